"""Metrics of the report: AUC, Wilson intervals, sharpness, reconstruction errors."""

import numpy as np
import pytest

from facemath_core.base.metrics import (
    frechet_distance,
    frechet_gaussians,
    frechet_interval,
    l1,
    laplacian_variance,
    mean_ci,
    psnr,
    roc_auc,
    wilson,
)


def test_roc_auc_is_the_pairwise_probability_with_ties_counting_half():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    positive = rng.random(60) < 0.4
    pairs = [(p > n) + 0.5 * (p == n) for p in scores[positive] for n in scores[~positive]]
    auc, se = roc_auc(scores, positive)
    assert auc == pytest.approx(np.mean(pairs))
    assert 0 < se < 0.2
    assert roc_auc([1, 2, 3, 4], [False, False, True, True])[0] == 1.0
    assert roc_auc([4, 3, 2, 1], [False, False, True, True])[0] == 0.0
    assert np.isnan(roc_auc([1, 2], [True, True])[0])


def test_wilson_interval_known_values():
    rate, low, high = wilson(8, 10)
    assert rate == 0.8 and low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 20)[1] == 0.0 and wilson(20, 20)[2] == 1.0
    assert np.isnan(wilson(0, 0)[0])


def test_mean_ci_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = mean_ci(rng.normal(size=20)), mean_ci(rng.normal(size=2000))
    assert large[1] < small[1] / 5
    assert mean_ci([1.0, np.nan, 3.0]) == (2.0, pytest.approx(12.7062))  # NaN dropped, std sqrt(2), n 2, t(1)
    assert mean_ci(np.arange(10_000.0))[1] == pytest.approx(1.96 * np.arange(10_000.0).std(ddof=1) / 100, rel=1e-3)


def test_blur_lowers_laplacian_variance_and_psnr():
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (3, 32, 32, 3))
    blurred = uniform_filter(images, size=(1, 3, 3, 1))
    assert np.all(laplacian_variance(blurred) < 0.2 * laplacian_variance(images))
    assert np.all(psnr(images, images) > 100) and np.all(psnr(blurred, images) < 20)
    assert l1(images, images).max() == 0 and l1(np.ones((1, 2, 2, 3)), -np.ones((1, 2, 2, 3)))[0] == 1.0


def test_ssim_matches_scikit_image(synth_faces):
    """The report's SSIM against scikit-image's structural_similarity with the Wang et al. (2004) settings that
    tf.image.ssim uses: an 11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03, population covariances, per
    channel then averaged, on faces and three distortions of them (noise, blur, a brightness shift)."""
    from scipy.ndimage import gaussian_filter
    from skimage.metrics import structural_similarity

    from facemath_core.base.metrics import ssim
    from facemath_core.data.folders import load_folder_images, open_faces
    from facemath_core.data.images import to_unit

    faces = to_unit(load_folder_images(open_faces(synth_faces), 32)[:4]).astype(np.float64)
    rng = np.random.default_rng(3)
    distorted = np.concatenate(
        [
            np.clip(faces + rng.normal(0, 0.2, faces.shape), -1, 1),
            gaussian_filter(faces, sigma=(0, 1.2, 1.2, 0)),
            np.clip(faces + 0.3, -1, 1),
        ]
    )
    originals = np.concatenate([faces] * 3)
    ours = ssim(distorted.astype(np.float32), originals.astype(np.float32))
    reference = [
        structural_similarity(
            (a + 1) / 2,
            (b + 1) / 2,
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for a, b in zip(distorted, originals, strict=True)
    ]
    assert len(set(np.round(reference, 2))) > 3  # the distortions differ: the comparison spans a range
    np.testing.assert_allclose(ours, reference, atol=1e-4)  # float32 against float64


# --- the Frechet distance (FID's recipe) ---------------------------------------------------------------------------


def _random_covariance(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _frechet_by_eigh(mu1, s1, mu2, s2):
    """The closed form computed another way, without scipy.linalg.sqrtm: Tr((S1 S2)^(1/2)) equals
    Tr((S1^(1/2) S2 S1^(1/2))^(1/2)), a symmetric positive semi-definite root, taken here by eigendecompositions."""

    def sym_sqrt(m):
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    root1 = sym_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross)


def test_frechet_of_identical_sets_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 16)) * np.arange(1, 17)  # variances 1 ... 256
    value = frechet_distance(features, features.copy())
    assert abs(value) < 1e-9 * np.trace(np.cov(features, rowvar=False))


def test_frechet_of_diagonal_gaussians_is_the_closed_form_by_hand():
    # Diagonal covariances commute: (S1 S2)^(1/2) = diag(sqrt(s1 s2)), so the distance is
    # sum (mu1 - mu2)^2 + sum (sqrt(s1) - sqrt(s2))^2. Here: 1 + 4 + 0 + (1 - 2)^2 + (3 - 1)^2 + (0.5 - 0.5)^2.
    mu1, mu2 = np.array([0.0, 2.0, -1.0]), np.array([1.0, 0.0, -1.0])
    s1, s2 = np.array([1.0, 9.0, 0.25]), np.array([4.0, 1.0, 0.25])
    assert frechet_gaussians(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(10.0, abs=1e-12)
    # One dimension: the 2-Wasserstein distance of N(m1, a^2) and N(m2, b^2) is (m1 - m2)^2 + (a - b)^2.
    assert frechet_gaussians([3.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx(9.0 + 1.0, abs=1e-12)


def test_frechet_of_full_covariances_matches_an_eigendecomposition():
    rng = np.random.default_rng(1)
    for d in (2, 8, 64):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_covariance(rng, d), _random_covariance(rng, d)
        assert frechet_gaussians(mu1, s1, mu2, s2) == pytest.approx(_frechet_by_eigh(mu1, s1, mu2, s2), rel=1e-8)
        assert frechet_gaussians(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8 * np.trace(s1))


def test_frechet_from_samples_converges_to_the_closed_form():
    rng = np.random.default_rng(2)
    d = 6
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = _random_covariance(rng, d), 2.0 * _random_covariance(rng, d)
    truth = _frechet_by_eigh(mu1, s1, mu2, s2)

    def rms_error(n, repeats=8):
        draws = [
            frechet_distance(rng.multivariate_normal(mu1, s1, n), rng.multivariate_normal(mu2, s2, n)) - truth
            for _ in range(repeats)
        ]
        return float(np.sqrt(np.mean(np.square(draws))))

    # The error falls like 1/sqrt(N) (the bias like 1/N): 100 times the samples, about a tenth of the error.
    small, large = rms_error(100), rms_error(10_000)
    assert large < small / 5
    assert rms_error(100_000, repeats=1) < 0.01 * truth
    # Two samples of one distribution: the distance falls to 0 (the estimator's bias shrinks like 1/N).
    same = [
        frechet_distance(rng.multivariate_normal(mu1, s1, n), rng.multivariate_normal(mu1, s1, n))
        for n in (100, 10_000)
    ]
    assert same[1] < same[0] / 20 and same[1] < 0.01 * np.trace(s1)


def test_frechet_with_fewer_samples_than_features_stays_finite():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(10, 32)) + 1.0  # singular covariances: the eps fallback
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


def test_frechet_refuses_mismatched_features():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_frechet_interval_is_the_spread_of_fresh_draws_and_narrows_like_one_over_root_n():
    """The bootstrap's standard error, from one pair of sets, against a second estimate made without it: the
    standard deviation of the distance over many independent pairs drawn from the same two Gaussians."""
    rng = np.random.default_rng(4)
    d = 4
    mu1, mu2 = np.zeros(d), np.full(d, 0.7)
    s1, s2 = _random_covariance(rng, d), 1.5 * _random_covariance(rng, d)

    def draw(n):
        return rng.multivariate_normal(mu1, s1, n), rng.multivariate_normal(mu2, s2, n)

    halves = {}
    for n in (200, 800, 3200):
        fresh = np.std([frechet_distance(*draw(n)) for _ in range(60)], ddof=1)
        value, half = frechet_interval(*draw(n), paired=False, rounds=200, seed=1)
        assert value == pytest.approx(frechet_distance(*draw(n)), abs=6 * fresh)
        assert 0.6 < (half / 1.96) / fresh < 1.6, n  # the same standard error, two ways
        halves[n] = half
    # Four times the faces, about half the interval (sqrt(4)): it converges, it is not a constant.
    assert 1.4 < halves[200] / halves[800] < 2.9 and 1.4 < halves[800] / halves[3200] < 2.9


def test_frechet_interval_pairs_rows_when_asked():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(300, 3))
    # Paired resamples of a set against itself are still identical sets: 0, with no spread at all.
    value, half = frechet_interval(features, features.copy(), paired=True, rounds=50)
    assert value == pytest.approx(0.0, abs=1e-9) and half == pytest.approx(0.0, abs=1e-9)
    value, half = frechet_interval(features, features.copy(), paired=False, rounds=50)
    assert value == pytest.approx(0.0, abs=1e-9) and half > 0.0
    assert all(np.isnan(frechet_interval(features[:1], features, paired=False)))
