"""How good are attribute vectors and face arithmetic? Measured with the attribute oracle as the judge.

- AUC: an attribute vector v used as a linear classifier on held-out latents (score z . v);
- success: add v to held-out faces that lack the attribute; the share the oracle now judges to have it;
- preservation: the share of the other attributes the oracle judges unchanged by the edit (attributes that never
  co-occur with the target in the labels, such as two hair colours, are left out: switching one on must switch
  the other off);
- analogies (DCGAN paper): mean(A & ~P) - mean(~A & ~P) + mean(~A & P) with n exemplars per concept must give a
  face with A and P, keeping the other attributes of the mean(~A & P) face.

Everything is judged on renders: the oracle compares the edited face with the render of the unedited latent, so
the score measures the edit, not the reconstruction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.metrics import frechet_distance, roc_auc, wilson
from facemath_core.base.text import plural
from facemath_core.latent.arithmetic import Evaluator
from facemath_core.latent.attribute_vectors import attribute_vectors, exclusive_with
from facemath_core.latent.latents import flag_array
from facemath_core.latent.space import LatentSpace
from facemath_core.latent.worked_example import work_out

# Below these counts a statistic is noise, not a measurement (an AUC from one positive face is 0 or 1; a success
# rate from two edits has a Wilson interval wider than half the range): the CLI prints "n/a" and warns instead.
MIN_AUC_FACES = 5  # held-out faces with the attribute, and as many without it
MIN_EDITED = 5  # held-out faces the vector was added to

Render = Callable[[np.ndarray], np.ndarray]  # z (N, D) -> images (N, H, W, 3) in [-1, 1]
Judge = Callable[[np.ndarray], np.ndarray]  # images -> (N, K_oracle) logits


def split_rows(count: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of row indices into (fit, held-out)."""
    if not 0.0 < held_out < 1.0:
        raise FacemathError(f"--held-out {held_out}: a fraction between 0 and 1")
    order = np.random.default_rng(seed).permutation(count)
    cut = count - max(1, int(round(held_out * count)))
    if cut < 2:
        raise FacemathError(f"only {plural(count, 'latent')}: too few to fit attribute vectors and hold some out")
    return np.sort(order[:cut]), np.sort(order[cut:])


@dataclass
class AttributeScore:
    attribute: str
    auc: float
    auc_se: float
    positives: int  # held-out faces with the attribute
    negatives: int
    edited: int  # held-out faces without it (labels and oracle agree) that the vector was added to
    success: float
    success_low: float
    success_high: float
    preserved: float  # mean share of the other judged attributes unchanged
    all_preserved: float  # share of edited faces with every other judged attribute unchanged

    @property
    def auc_measured(self) -> bool:
        return min(self.positives, self.negatives) >= MIN_AUC_FACES

    @property
    def success_measured(self) -> bool:
        return self.edited >= MIN_EDITED

    def as_dict(self) -> dict:
        return {**asdict(self), "auc_measured": self.auc_measured, "success_measured": self.success_measured}


def too_few_lines(scores: Sequence[AttributeScore]) -> list[str]:
    """One line per statistic left out for resting on too few faces, naming the attributes and the minimum."""
    lines = []
    auc = [s.attribute for s in scores if not s.auc_measured]
    if auc:
        lines.append(
            f"AUC not reported for {', '.join(auc)}: fewer than {MIN_AUC_FACES} held-out faces with and "
            f"{MIN_AUC_FACES} without the attribute (use more latents or a larger --held-out)"
        )
    edits = [s.attribute for s in scores if 0 < s.edited < MIN_EDITED]
    if edits:
        lines.append(
            f"success and preservation not reported for {', '.join(edits)}: fewer than {MIN_EDITED} held-out "
            f"faces to edit"
        )
    return lines


def judged_columns(space: LatentSpace, oracle_names: Sequence[str]) -> dict[str, int]:
    """Attribute name -> oracle column, for the attributes both the labels and the oracle know."""
    return {name: list(oracle_names).index(name) for name in space.attribute_names if name in oracle_names}


def score_vectors(
    space: LatentSpace,
    render: Render,
    judge: Judge,
    oracle_names: Sequence[str],
    held_out: float = 0.3,
    seed: int = 0,
    scale: float = 1.0,
    corrected: bool = True,
) -> tuple[np.ndarray, list[AttributeScore]]:
    """Fit attribute vectors on part of the latents, score them on the rest. Returns (vectors (K, D), scores)."""
    labels = space.require_labels("scoring attribute vectors")
    fit, test = split_rows(len(space.z), held_out, seed)
    vectors = attribute_vectors(space.z[fit], labels[fit], space.attribute_names, corrected)
    columns = judged_columns(space, oracle_names)
    exclusive = exclusive_with(labels)
    before = judge(render(space.z[test])) > 0 if columns else None
    scores = []
    for k, name in enumerate(space.attribute_names):
        if np.isnan(vectors[k]).any():
            continue  # constant in the fitted part: no vector
        auc, se = roc_auc(space.z[test] @ vectors[k], labels[test, k])
        row = dict(attribute=name, auc=auc, auc_se=se, positives=int(labels[test, k].sum()))
        row["negatives"] = len(test) - row["positives"]
        edited = 0
        success = preserved = all_preserved = float("nan")
        low = high = float("nan")
        if name in columns:
            column = columns[name]
            lacking = np.flatnonzero(~labels[test, k] & ~before[:, column])
            edited = len(lacking)
            if edited:
                after = judge(render(space.z[test[lacking]] + scale * vectors[k])) > 0
                others = [
                    c
                    for other, c in columns.items()
                    if other != name and not exclusive[k, space.attribute_names.index(other)]
                ]
                hits = int(after[:, column].sum())
                success, low, high = wilson(hits, edited)
                same = after[:, others] == before[lacking][:, others]
                preserved = float(same.mean()) if others else float("nan")
                all_preserved = float(same.all(axis=1).mean()) if others else float("nan")
        row.update(edited=edited, success=success, success_low=low, success_high=high)
        scores.append(AttributeScore(**row, preserved=preserved, all_preserved=all_preserved))
    return vectors, scores


def analogy_expression(target: str, pivot: str, scale: float = 1.0) -> str:
    """The DCGAN paper's analogy: from faces with the target minus faces without it, added to the pivot group;
    `scale` pushes the difference further, as `--scale` does for attribute vectors (the base term stays third)."""
    if scale == 1.0:
        return f"mean({target} & ~{pivot}) - mean(~{target} & ~{pivot}) + mean(~{target} & {pivot})"
    return f"{scale:g} * mean({target} & ~{pivot}) - {scale:g} * mean(~{target} & ~{pivot}) + mean(~{target} & {pivot})"


@dataclass
class AnalogyScore:
    target: str
    pivot: str
    exemplars: int
    trials: int
    success: float  # the result has the target and the pivot attribute
    success_low: float
    success_high: float
    preserved: float  # share of the other attributes equal to those of the mean(~target & pivot) face

    def as_dict(self) -> dict:
        return asdict(self)


def score_analogies(
    space: LatentSpace,
    operators: dict,
    render: Render,
    judge: Judge,
    oracle_names: Sequence[str],
    targets: Sequence[str],
    pivot: str,
    exemplars: int,
    trials: int,
    seed: int = 0,
    match: bool = False,
    match_labels: tuple[list[str], np.ndarray] | None = None,
    scale: float = 1.0,
) -> list[AnalogyScore]:
    """Run each target's analogy `trials` times with different exemplars; judge the results with the oracle.

    `match` draws the three groups' exemplars as matched sets (facemath_core.latent.matching) on the labels, or on
    `match_labels` (names, (N, K) bools) such as the oracle's reading of each face's render; a target whose groups
    offer fewer than `exemplars` matched sets is left out, like one with an empty group."""
    labels = space.require_labels("scoring analogies")
    columns = judged_columns(space, oracle_names)
    exclusive = exclusive_with(labels)
    usable = ~flag_array(space.latents)  # the Evaluator's groups leave flagged faces out: so does this check
    scores = []
    for target in targets:
        a, p = labels[usable, space.attribute_names.index(target)], labels[usable, space.attribute_names.index(pivot)]
        if min((a & ~p).sum(), (~a & ~p).sum(), (~a & p).sum()) == 0:
            continue  # a concept with no usable face: this analogy cannot be formed on these latents
        expression = analogy_expression(target, pivot, scale)
        results, bases = [], []
        for trial in range(trials):
            evaluator = Evaluator(
                space,
                operators,
                exemplars=exemplars,
                seed=seed * 100_003 + trial,
                match=match,
                match_labels=match_labels,
            )
            try:
                example = work_out(evaluator, expression, variants=0)
            except FacemathError:
                if not match:
                    raise
                break  # too few matched sets for this target
            results.append(example.result.z)
            bases.append(example.terms[2].z)  # the same exemplars as inside the analogy
        if len(results) < trials:
            continue
        after = judge(render(np.stack(results))) > 0
        base = judge(render(np.stack(bases))) > 0
        t, p = columns[target], columns[pivot]
        k = space.attribute_names.index(target)
        others = [
            c
            for name, c in columns.items()
            if name not in (target, pivot) and not exclusive[k, space.attribute_names.index(name)]
        ]
        hits = int((after[:, t] & after[:, p]).sum())
        rate, low, high = wilson(hits, trials)
        preserved = float((after[:, others] == base[:, others]).mean()) if others else float("nan")
        scores.append(AnalogyScore(target, pivot, exemplars, trials, rate, low, high, preserved))
    return scores


# --- realism: a Frechet distance in the oracle's feature space ------------------------------------------------------


def oracle_features(backend, images: np.ndarray) -> np.ndarray:
    """The attribute oracle's penultimate-layer features (its global average pool, 128 values per face) of images
    in [-1, 1], through its `features` signature: the feature network of facemath's Frechet distance, in place of
    FID's Inception (which knows nothing of these faces and is not shipped)."""
    version = backend.version(S.ORACLE)
    if S.FEATURES not in (backend.metadata(S.ORACLE).get("signatures") or {}):
        raise FacemathError(
            f"{S.ORACLE} version {version} has no {S.FEATURES} signature: re-export "
            f"it with facemath_core.models.export.reexport, or use a newer version"
        )
    return backend.batched(S.ORACLE, S.FEATURES, {S.IMAGES: images})[S.FEATURES]


def frechet_realism(backend, reference: np.ndarray, images: np.ndarray) -> float:
    """How far a set of faces (a method's reconstructions, a model's prior samples) is, as a population, from the
    reference faces (real held-out ones): the Frechet distance between the two sets' oracle features. 0 for the
    same distribution; use sets of equal size (the estimate's bias shrinks like 1/N)."""
    return frechet_distance(oracle_features(backend, reference), oracle_features(backend, images))
