"""Metrics of the report: AUC, Wilson intervals, sharpness, reconstruction errors."""

import numpy as np
import pytest

from facemath_core.base.metrics import l1, laplacian_variance, mean_ci, psnr, roc_auc, wilson


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
