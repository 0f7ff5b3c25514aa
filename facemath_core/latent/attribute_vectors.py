"""Attribute vectors: the change of z that switches an attribute on, fitted by least squares over the labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facemath_core.base.errors import FacemathError


def exclusive_with(labels: np.ndarray) -> np.ndarray:
    """(K, K) bool: attribute j never co-occurs with attribute k although both occur (hair colours)."""
    both = labels.T.astype(int) @ labels.astype(int)
    present = labels.any(axis=0)
    exclusive = (both == 0) & present[:, None] & present[None, :]
    np.fill_diagonal(exclusive, False)
    return exclusive


def attribute_vectors(z: np.ndarray, labels: np.ndarray, names: Sequence[str], corrected: bool = True) -> np.ndarray:
    """One vector per attribute (K, D): the change of z when that attribute is switched on.

    Uncorrected, it is the balanced difference of means (faces with minus faces without). Attributes are often
    correlated in real data (Male and Wearing_Hat in CelebA), and then a difference of means carries the correlated
    attribute along. White's bias correction removes that: each vector is estimated by least squares of z on the
    attribute indicators together, so its coefficient is the effect of its attribute with the others held fixed.
    With independent, balanced attributes both give the same vectors.

    Attributes that never occur together (two hair colours) are the exception: Blond_Hair cannot be switched on
    with Black_Hair held fixed, so holding it fixed would leave the Black-to-Blond change out of the Blond vector
    and adding it to a black-haired face would do little. Each attribute's regression therefore leaves out the
    attributes it excludes; its vector then also switches them off, as the data says it must.
    """
    labels = np.asarray(labels, bool)
    counts = labels.sum(axis=0)
    varies = (counts > 0) & (counts < len(labels))
    vectors = np.full((labels.shape[1], z.shape[1]), np.nan, np.float32)
    if not corrected:
        for k in np.flatnonzero(varies):
            vectors[k] = z[labels[:, k]].mean(axis=0) - z[~labels[:, k]].mean(axis=0)
        return vectors
    # Constant attributes (nobody wears a hat in this folder) have no vector and stay out of the regressions.
    exclusive = exclusive_with(labels)
    fits: dict[tuple[int, ...], np.ndarray] = {}  # attributes in the regression -> coefficients (one fit per set)
    for k in np.flatnonzero(varies):
        kept = tuple(int(j) for j in np.flatnonzero(varies) if not exclusive[k, j])
        if kept not in fits:
            design = np.concatenate([np.ones((len(z), 1)), labels[:, kept].astype(np.float64)], axis=1)
            fits[kept], *_ = np.linalg.lstsq(design, z.astype(np.float64), rcond=None)
        vectors[k] = fits[kept][1 + kept.index(int(k))]
    return vectors


def check_vector(vectors: np.ndarray, labels: np.ndarray, names: Sequence[str], name: str) -> np.ndarray:
    """The vector of one attribute, or a clear error when every face has (or lacks) it."""
    k = list(names).index(name)
    if np.isnan(vectors[k]).any():
        state = "has" if labels[:, k].all() else "lacks"
        raise FacemathError(f"attribute {name}: every one of the {len(labels)} faces {state} it, so it has no vector")
    return vectors[k]
