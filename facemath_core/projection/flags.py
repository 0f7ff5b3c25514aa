"""Flagging projections that visibly failed: outliers of the final loss and of the known pixels' PSNR.

A projection can converge to a different person: its loss is then far above the others' (2479 against a median of
about 1070 in one run) and its reconstruction far from the known pixels. Both are judged against the same run's
other faces with the robust z-score of Iglewicz and Hoaglin (1993), which one bad face cannot drag along the way a
mean and a standard deviation can:

    M_i = 0.6745 (x_i - median(x)) / MAD,   MAD = median(|x - median(x)|)

A face is flagged when M > LOSS_Z (its loss is an outlier upwards) or M < -PSNR_Z for the PSNR of its known pixels
(an outlier downwards). 3.5 is the cut-off Iglewicz and Hoaglin recommend. With fewer than MIN_FACES faces there
is no "usual" to compare against, and nothing is flagged. Faces whose loss became NaN are `failed`, not flagged.
"""

from __future__ import annotations

import numpy as np

LOSS_Z = 3.5
PSNR_Z = 3.5
MIN_FACES = 3
_MAD_TO_SIGMA = 0.6745  # the MAD of a normal distribution is 0.6745 sigma
_MEAN_AD_TO_SIGMA = 0.7979  # the mean absolute deviation of a normal distribution is 0.7979 sigma


def robust_z(values: np.ndarray, usable: np.ndarray | None = None) -> np.ndarray:
    """The robust z-score of each value against the usable ones (NaN where not usable or too few to judge).

    When more than half the values are equal the MAD is 0; the mean absolute deviation stands in for it then (as
    IBM's SPSS does), and when that is 0 too every value is the median and scores 0."""
    values = np.asarray(values, np.float64)
    usable = np.isfinite(values) if usable is None else np.asarray(usable, bool) & np.isfinite(values)
    scores = np.full(values.shape, np.nan)
    if usable.sum() < MIN_FACES:
        return scores
    sample = values[usable]
    median = np.median(sample)
    mad = np.median(np.abs(sample - median))
    if mad > 0:
        scores[usable] = _MAD_TO_SIGMA * (sample - median) / mad
        return scores
    mean_ad = np.mean(np.abs(sample - median))
    scores[usable] = _MEAN_AD_TO_SIGMA * (sample - median) / mean_ad if mean_ad > 0 else 0.0
    return scores


def flag_outliers(losses: np.ndarray, psnr: np.ndarray, failed: np.ndarray | None = None) -> np.ndarray:
    """True for each face whose final loss or known-pixel PSNR is an outlier among the run's faces."""
    return np.array([bool(why) for why in reasons(losses, psnr, failed)], bool)


def reasons(losses: np.ndarray, psnr: np.ndarray, failed: np.ndarray | None = None) -> list[str]:
    """Why each face is flagged ("" when it is not), for the summary and the contact sheet."""
    usable = np.ones(len(losses), bool) if failed is None else ~np.asarray(failed, bool)
    loss_z, psnr_z = robust_z(losses, usable), robust_z(psnr, usable)
    out = []
    for lz, pz in zip(np.nan_to_num(loss_z), np.nan_to_num(psnr_z), strict=True):
        why = []
        if lz > LOSS_Z:
            why.append(f"loss z {lz:.1f} > {LOSS_Z}")
        if pz < -PSNR_Z:
            why.append(f"PSNR z {pz:.1f} < -{PSNR_Z}")
        out.append("; ".join(why))
    return out
