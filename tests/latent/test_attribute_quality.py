"""Attribute-vector and analogy scoring in a world where the answer is known.

The "faces" are the latents themselves: render is the identity and the judge reads attributes straight off the
coordinates (Smiling is z0 > 0, Male is z1 > 0, a hair colour is z2's sign, Blond needs z3 > 0 too), so a correct
attribute vector points along its coordinate, and success and preservation follow from geometry.
"""

import numpy as np
import pytest

from facemath_core.base.errors import FacemathError
from facemath_core.latent.latents import Latents
from facemath_core.latent.quality import (
    analogy_expression,
    exclusive_with,
    score_analogies,
    score_vectors,
    split_rows,
)
from facemath_core.latent.space import LatentSpace

NAMES = ["Smiling", "Male", "Black_Hair", "Blond_Hair"]


def judge(z):
    """Logits per attribute in NAMES; Black and Blond hair never occur together."""
    return np.stack([z[:, 0], z[:, 1], z[:, 2], np.minimum(-z[:, 2], z[:, 3])], axis=1)


def linear_world(n=800, d=8, seed=0):
    z = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    labels = judge(z) > 0
    latents = Latents([f"{i:06d}.png" for i in range(n)], z, "vae", "vae_decoder", 1, "encoder")
    return LatentSpace(latents, list(NAMES), labels, "test")


def identity(z):
    return np.asarray(z)


def test_exclusive_attributes_are_those_that_never_co_occur():
    space = linear_world()
    exclusive = exclusive_with(space.labels)
    assert exclusive[2, 3] and exclusive[3, 2]
    assert not exclusive[0, 1] and not exclusive[0, 2] and not exclusive.diagonal().any()


def test_split_rows_is_seeded_and_disjoint():
    fit, test = split_rows(100, 0.3, seed=4)
    assert len(test) == 30 and not set(fit) & set(test) and len(fit) + len(test) == 100
    assert np.array_equal(split_rows(100, 0.3, seed=4)[1], test)
    with pytest.raises(FacemathError, match="--held-out"):
        split_rows(100, 1.5, seed=0)


def test_vectors_classify_and_edit_along_their_own_coordinate():
    space = linear_world()
    vectors, scores = score_vectors(space, identity, judge, NAMES, held_out=0.3, seed=1, scale=3.0)
    by_name = {s.attribute: s for s in scores}
    # Smiling's vector is mostly z0: a near-perfect classifier and an edit that leaves Male and the hair alone.
    assert np.argmax(np.abs(vectors[0])) == 0
    smiling = by_name["Smiling"]
    assert smiling.auc > 0.95 and smiling.positives + smiling.negatives == 240
    assert smiling.edited > 50 and smiling.success > 0.9 and smiling.success_low < smiling.success
    assert smiling.preserved > 0.9


def test_a_vector_for_an_exclusive_attribute_switches_its_rivals_off():
    """Blond needs z2 < 0 (not black) and z3 > 0: holding Black_Hair fixed in the regression would drop the z2 part."""
    space = linear_world()
    vectors, scores = score_vectors(space, identity, judge, NAMES, held_out=0.3, seed=1, scale=3.0)
    blond = {s.attribute: s for s in scores}["Blond_Hair"]
    assert vectors[3, 2] < -0.5 and vectors[3, 3] > 0.5
    assert blond.success > 0.9 and blond.preserved > 0.85  # Black_Hair going off is not counted against it


def test_a_judge_that_ignores_the_edit_gives_low_success():
    space = linear_world()
    # Labels come from the last coordinates, the judge reads the first ones: vectors fitted to the labels move
    # coordinates the judge does not look at, so hardly any edit succeeds.
    space.labels = judge(space.z[:, ::-1].copy()) > 0
    _, scores = score_vectors(space, identity, judge, NAMES, seed=1, scale=3.0)
    by_name = {s.attribute: s for s in scores}
    assert by_name["Male"].success < 0.2 and by_name["Blond_Hair"].success < 0.2


def test_analogies_give_smiling_men_from_three_exemplars():
    space = linear_world()
    scores = score_analogies(space, {}, identity, judge, NAMES, ["Smiling"], "Male", exemplars=3, trials=40)
    (score,) = scores
    expected = "mean(Smiling & ~Male) - mean(~Smiling & ~Male) + mean(~Smiling & Male)"
    assert analogy_expression("Smiling", "Male") == expected
    assert score.trials == 40 and score.exemplars == 3
    assert score.success > 0.6 and score.success_low <= score.success <= score.success_high
