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


# --- out of domain: judged against the model's own held-out faces, not the run's ----------------------------------
#
# The flags above compare a face with the other faces of its run, which says nothing when every face of the run is
# strange (a run of real photos through a model of synthetic faces) or when the run holds one face. A model's
# metadata records the quantiles of its reconstruction PSNR on its held-out faces (`reconstruction_psnr`, written
# at export, see docs/models.md); a face reconstructed worse than all but 1% of those is out of the model's domain.

DOMAIN_QUANTILE = "0.01"
TYPICAL_QUANTILE = "0.5"


def domain_threshold(metadata: dict) -> tuple[float, float] | None:
    """(1st percentile, median) of the model's held-out reconstruction PSNR, or None when its metadata has none."""
    record = metadata.get("reconstruction_psnr")
    if not isinstance(record, dict):
        return None
    quantiles = record.get("quantiles") or {}
    try:
        low, typical = float(quantiles[DOMAIN_QUANTILE]), float(quantiles[TYPICAL_QUANTILE])
    except (KeyError, TypeError, ValueError):
        return None
    return (low, typical) if np.isfinite(low) and np.isfinite(typical) else None


def out_of_domain(psnr: np.ndarray, metadata: dict, failed: np.ndarray | None = None) -> np.ndarray | None:
    """True for each face whose known-pixel PSNR is below the model's 1st-percentile PSNR on its held-out faces;
    None when the model records no such figures (nothing can be said). Failed faces are not marked (they are
    failed)."""
    threshold = domain_threshold(metadata)
    if threshold is None:
        return None
    marks = np.asarray(psnr, np.float64) < threshold[0]
    if failed is not None:
        marks &= ~np.asarray(failed, bool)
    return marks


def domain_warnings(names, psnr, marks, metadata: dict, model: str, version: int) -> list[str]:
    """One line per face marked out of domain, naming the model's typical PSNR and what it was trained on."""
    if marks is None or not np.any(marks):
        return []
    low, typical = domain_threshold(metadata)
    record = metadata.get("reconstruction_psnr", {})
    data = ((metadata.get("card") or {}).get("data") or {}).get("recipe") or record.get("data") or "its training data"
    lines = []
    for name, value, mark in zip(names, psnr, marks, strict=True):
        if mark:
            lines.append(
                f"{name}: out of the model's domain: PSNR {value:.1f} dB, below {model} version {version}'s 1st "
                f"percentile ({low:.1f} dB; typical {typical:.1f} dB on its held-out faces, trained on {data}): a "
                f"face unlike its training faces, or a reconstruction that failed"
            )
    return lines
