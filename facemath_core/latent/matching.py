"""Attribute-matched exemplars: the faces of several groups drawn so that their other attributes are the same.

`mean(Smiling & ~Male) - mean(~Smiling & ~Male)` is meant to be the smile, but with exemplars drawn at random the
two groups also differ in whatever else their faces happen to have (glasses in one, a hat in the other), and that
difference is carried into the result. Exact matching (Stuart 2010, "Matching methods for causal inference",
Statistical Science 25(1), section 3.1; Rosenbaum 2002, "Observational Studies", chapter 3, matched sets) removes
it: the faces are drawn in matched sets, one face from every group per set, all faces of a set having the same
values of the matching attributes. Each group's mean then averages the same mix of matching-attribute values, so
in a difference of two groups those attributes cancel exactly, whatever their effect on z, and only the attributes
that define the groups remain.

A matched set can only be formed in a stratum (one combination of matching-attribute values) where every group has
a face; a stratum with k faces in its smallest group offers k sets. Sets are drawn uniformly from all that are
offered, and each group's faces within a stratum without replacement, so `--exemplars 0` uses every set there is
(the 1:1 matched-sets estimator; strata are weighted by how many sets they offer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facemath_core.base.errors import FacemathError
from facemath_core.base.text import plural
from facemath_core.latent.attribute_vectors import exclusive_with


def matching_columns(
    names: Sequence[str], labels: np.ndarray, defining: Sequence[str], match_on: Sequence[str] | None = None
) -> list[int]:
    """The label columns to match on.

    `match_on` given: those attributes (each must be a column). Otherwise every attribute except the ones that
    define the groups (`defining`) and those that never co-occur with a defining attribute: a blond face has no
    other hair colour, so matching blond faces with non-blond faces on Black_Hair would leave only faces with no
    hair colour at all (the same exception as attribute vectors, facemath_core.latent.attribute_vectors)."""
    names = list(names)
    if match_on is not None:
        unknown = [a for a in match_on if a not in names]
        if unknown:
            raise FacemathError(
                f"--match-on {unknown[0]}: not an attribute of the matching labels ({', '.join(names)})"
            )
        return [names.index(a) for a in dict.fromkeys(match_on)]
    exclusive = exclusive_with(labels)
    defined = [names.index(a) for a in defining if a in names]
    return [k for k in range(len(names)) if k not in defined and not any(exclusive[k, d] for d in defined)]


def strata(labels: np.ndarray) -> np.ndarray:
    """(N,) int: the index of each row's combination of values (rows with the same values share an index)."""
    if labels.shape[1] == 0:
        return np.zeros(len(labels), int)
    _, index = np.unique(np.asarray(labels, bool), axis=0, return_inverse=True)
    return index.reshape(-1)


def matched_sets(
    masks: Sequence[np.ndarray], stratum: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], int]:
    """`count` matched sets (0 = all there are) drawn from groups given as (N,) bool masks.

    Returns each group's rows (sorted) and how many sets were available. Every group gets exactly one face per
    set, and the faces of a set share their stratum; a set never uses a face twice within one group."""
    members = [np.flatnonzero(m) for m in masks]
    size = int(stratum.max()) + 1 if len(stratum) else 0
    per_group = np.stack([np.bincount(stratum[rows], minlength=size) for rows in members])
    offered = per_group.min(axis=0)
    available = int(offered.sum())
    if available == 0 or count > available:
        return [], available
    wanted = available if count == 0 else count
    slots = np.repeat(np.arange(size), offered)
    taken = np.bincount(slots[rng.choice(len(slots), wanted, replace=False)], minlength=size)
    chosen = []
    for rows in members:
        picks = [rng.choice(rows[stratum[rows] == s], taken[s], replace=False) for s in np.flatnonzero(taken)]
        chosen.append(np.sort(np.concatenate(picks)))
    return chosen, available


def no_match_message(texts: Sequence[str], attributes: Sequence[str], available: int, count: int) -> str:
    """One line naming the groups and the attributes they could not be matched on."""
    groups = ", ".join(f"mean({t})" for t in texts)
    on = ", ".join(attributes) if attributes else "no attributes"
    if available == 0:
        return f"--match: no faces of {groups} share their other attributes ({on}); try --match-on with fewer"
    return (
        f"--match: only {plural(available, 'matched set')} of faces for {groups} (matched on {on}); "
        f"use --exemplars {available} or fewer"
    )
