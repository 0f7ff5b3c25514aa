"""Image and classifier metrics with their uncertainty, shared by the report and the benchmarks.

Images are float arrays (N, H, W, 3) in [-1, 1]; every image metric returns one value per image so that callers
can report a spread or a confidence interval, not only a mean.
"""

from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959964


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB (measured on the [0, 1] scale)."""
    mse = np.mean(((np.asarray(a) - np.asarray(b)) / 2.0) ** 2, axis=(1, 2, 3))
    return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))


def known_psnr(a: np.ndarray, b: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB over the known pixels only (`masks` (N, H, W), 1 = known): what a completion was fitted
    to, so a face that came back as someone else shows as a low value whatever the hole holds."""
    known = (np.asarray(masks) > 0.5)[..., None].astype(np.float64)
    squared = (((np.asarray(a, np.float64) - np.asarray(b, np.float64)) / 2.0) ** 2) * known
    count = np.maximum(known.sum(axis=(1, 2, 3)) * np.shape(a)[-1], 1.0)
    mse = squared.sum(axis=(1, 2, 3)) / count
    return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image SSIM (tf.image.ssim, on the [0, 1] scale)."""
    import tensorflow as tf

    return tf.image.ssim(tf.constant((a + 1) / 2), tf.constant((b + 1) / 2), max_val=1.0).numpy()


def l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image mean absolute error on the [0, 1] scale."""
    return np.mean(np.abs(np.asarray(a) - np.asarray(b)) / 2.0, axis=(1, 2, 3))


def laplacian_variance(images: np.ndarray) -> np.ndarray:
    """Per-image variance of the 4-neighbour Laplacian of the grey image: a standard sharpness measure
    (blur removes high frequencies, so the variance drops)."""
    grey = np.asarray(images, np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] - 4.0 * grey[:, 1:-1, 1:-1]
    return lap.reshape(len(lap), -1).var(axis=1)


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t: the report averages over as few as
    six attributes, where the normal 1.96 would give an interval a quarter too narrow)."""
    from scipy.stats import t

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return (float(values.mean()) if len(values) else float("nan")), float("nan")
    quantile = t.ppf(0.975, len(values) - 1)
    return float(values.mean()), float(quantile * values.std(ddof=1) / math.sqrt(len(values)))


def wilson(successes: int, total: int) -> tuple[float, float, float]:
    """A proportion with its Wilson 95% interval (rate, low, high); sound for small n and rates near 0 or 1."""
    if total == 0:
        return float("nan"), float("nan"), float("nan")
    p, z2 = successes / total, Z_95**2
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z_95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total**2)) / (1 + z2 / total)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def roc_auc(scores, positive) -> tuple[float, float]:
    """ROC AUC (the Mann-Whitney probability that a positive outscores a negative, ties count half) and its
    standard error by Hanley & McNeil (1982)."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # ties get their average rank
    auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = math.sqrt((auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg))
    return float(auc), float(se)


def frechet_gaussians(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), squared:
    ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)) (Dowson & Landau 1982; FID, Heusel et al. 2017).

    The matrix square root is scipy.linalg.sqrtm's, with the numerical care of FID's reference code (TTUR's
    fid.py, and pytorch-fid after it): a product whose square root is not finite (a singular covariance, fewer
    samples than features) is taken again with `eps` added to both diagonals, and the tiny imaginary part rounding
    leaves is dropped, unless it is large enough to mean a real error (then a ValueError names it)."""
    from scipy.linalg import sqrtm

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"means {mu1.shape}, {mu2.shape} and covariances {sigma1.shape}, {sigma2.shape} do not fit")
    diff = mu1 - mu2
    covmean = sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        if imaginary > 1e-3:
            raise ValueError(f"the matrix square root has an imaginary component of {imaginary:.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance(features1, features2) -> float:
    """FID's recipe on any features: the Frechet distance between Gaussians with the means and covariances of two
    sets of feature vectors (rows). facemath's feature network is the attribute oracle's penultimate layer
    (`latent.quality.oracle_features`), not Inception: the numbers compare methods on these faces, not with
    published FIDs. The estimate is biased upwards by a term that shrinks like 1/N (Chong & Forsyth 2020): compare
    sets of equal size."""
    features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if features1.ndim != 2 or features2.ndim != 2 or features1.shape[1] != features2.shape[1]:
        raise ValueError(f"feature sets of shapes {features1.shape} and {features2.shape}: need (N, D) and (M, D)")
    if min(len(features1), len(features2)) < 2:
        raise ValueError("a covariance needs at least 2 feature vectors per set")
    return frechet_gaussians(
        features1.mean(0), np.cov(features1, rowvar=False), features2.mean(0), np.cov(features2, rowvar=False)
    )


def frechet_interval(features1, features2, paired: bool, rounds: int = 200, seed: int = 0) -> tuple[float, float]:
    """The Frechet distance of two feature sets and the half-width of its 95% interval, (distance, half), as
    `mean_ci` gives them.

    The interval is the normal bootstrap interval, distance ± 1.96 bootstrap standard errors (Efron & Tibshirani
    1993, ch. 13), over `rounds` resamples of the rows: `paired` resamples the same rows of both sets (a face and
    its reconstruction stay together), otherwise each set on its own (real faces against prior samples). Not the
    percentile interval: a resample repeats rows, which narrows its covariances, so resampled distances sit above
    the plain one and their percentiles need not contain it; their spread is still the distance's standard error.
    NaNs when a set has fewer than 2 rows."""
    features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if min(len(features1), len(features2)) < 2:
        return float("nan"), float("nan")
    value = frechet_distance(features1, features2)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(rounds):
        rows1 = rng.integers(0, len(features1), len(features1))
        rows2 = rows1 if paired else rng.integers(0, len(features2), len(features2))
        draws.append(frechet_distance(features1[rows1], features2[rows2]))
    return value, float(1.96 * np.std(draws, ddof=1))
