import numpy as np
import pytest

from facemath_core.base.errors import FacemathError
from facemath_core.data.synth import (
    ATTRIBUTES,
    HAIR_ATTRIBUTES,
    FaceSampler,
    face_rng,
    parse_correlations,
    parse_frequencies,
    render_face,
)


def test_same_seed_same_face_different_seed_different_face():
    sampler = FaceSampler()
    a = render_face(sampler.sample(face_rng(5, 0)), 64)
    b = render_face(sampler.sample(face_rng(5, 0)), 64)
    c = render_face(sampler.sample(face_rng(6, 0)), 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05


def test_faces_are_shaded_not_flat():
    image = render_face(FaceSampler().sample(face_rng(0, 1)), 64)
    # Shading, gradients and noise: far more distinct colours than flat clip art's dozen.
    assert len(np.unique((image * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 1000
    assert 0.0 <= image.min() and image.max() <= 1.0


@pytest.mark.parametrize(
    "attribute, region",
    [
        ("Eyeglasses", np.s_[24:34, 14:50]),  # across the eyes
        ("Smiling", np.s_[38:50, 18:46]),  # the mouth
        ("Mouth_Slightly_Open", np.s_[38:50, 18:46]),
        ("Wearing_Hat", np.s_[0:20, 8:56]),  # top of the head
        ("Bangs", np.s_[14:26, 16:48]),  # forehead
        ("Male", np.s_[38:60, 12:52]),  # beard and jaw
    ],
)
def test_each_attribute_changes_its_region_visibly(attribute, region):
    """Toggling one attribute on an otherwise identical face changes its feature's pixels by a clear margin,
    so that a 64x64 model (and the oracle) can see it."""
    from dataclasses import replace

    for index in range(5):
        spec = FaceSampler({**parse_frequencies([]), "Wearing_Hat": 0.0, "Bangs": 0.0}).sample(face_rng(1, index))
        on = replace(spec, attributes={**spec.attributes, attribute: True})
        off = replace(spec, attributes={**spec.attributes, attribute: False})
        diff = np.abs(render_face(on, 64) - render_face(off, 64))[region].mean()
        assert diff > 0.02, (attribute, index, diff)


def test_frequencies_are_respected_and_attributes_independent():
    sampler = FaceSampler(parse_frequencies(["Smiling=0.2", "Male=0.7"]))
    specs = [sampler.sample(face_rng(0, i)) for i in range(3000)]
    smiling = np.array([s.attributes["Smiling"] for s in specs])
    male = np.array([s.attributes["Male"] for s in specs])
    assert abs(smiling.mean() - 0.2) < 0.03
    assert abs(male.mean() - 0.7) < 0.03
    assert abs(np.corrcoef(smiling, male)[0, 1]) < 0.06
    hair = np.array([[s.attributes[h] for h in HAIR_ATTRIBUTES] for s in specs])
    assert hair.sum(axis=1).max() == 1  # one hair colour at most
    assert abs(hair[:, HAIR_ATTRIBUTES.index("Black_Hair")].mean() - 0.25) < 0.03


def test_correlations_can_be_asked_for():
    sampler = FaceSampler(None, parse_correlations(["Smiling:Male=0.8"]))
    specs = [sampler.sample(face_rng(0, i)) for i in range(3000)]
    smiling = np.array([s.attributes["Smiling"] for s in specs])
    male = np.array([s.attributes["Male"] for s in specs])
    assert np.corrcoef(smiling, male)[0, 1] > 0.4


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["Smiling"], "expected NAME=FRACTION"),
        (["Smilin=0.3"], "unknown attribute 'Smilin'"),
        (["Smiling=x"], "is not a number"),
        (["Smiling=1.5"], "must lie in [0, 1]"),
        (["Black_Hair=0.9"], "hair colour frequencies add up to more than 1"),
    ],
)
def test_bad_frequencies_are_clear_errors(pairs, message):
    with pytest.raises(FacemathError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_frequencies(pairs)


def test_bad_correlations_are_clear_errors():
    with pytest.raises(FacemathError, match="not a binary attribute"):
        parse_correlations(["Black_Hair:Male=0.5"])
    with pytest.raises(FacemathError, match="expected A:B=RHO"):
        parse_correlations(["Smiling=0.5"])


def test_factors_are_recorded():
    spec = FaceSampler().sample(face_rng(0, 0))
    factors = spec.factors()
    assert set(factors) >= {"yaw", "skin_tone", "light_angle"}
    assert set(spec.attributes) == set(ATTRIBUTES)
