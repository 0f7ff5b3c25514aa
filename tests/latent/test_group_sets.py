"""The group language (`~`, `&`, `|`, parentheses, nesting) against sets computed here from the label file.

The label files are parsed by this module itself (`read_label_file`) and every expected group is computed with
Python's set operations over face names, never with the evaluator's masks. Flagged faces (failed projections) must
be left out of the group that the expression *says*, after the set algebra: `~Smiling` is the faces without a
smile, never a flagged smiling face (issue 24: flags applied before `~` turned `~(Smiling & ~flagged)` into
`~Smiling | flagged`). The command-line matrix (math, analogy, attributes, --match) is in test_group_sets_cli.py,
the studio's in tests/studio/test_studio_groups.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facemath_core.base.errors import FacemathError
from facemath_core.host.manager import load_registry
from facemath_core.latent.arithmetic import Evaluator, Group
from facemath_core.latent.expression import ExpressionError
from facemath_core.latent.latents import Latents
from facemath_core.latent.quality import score_analogies
from facemath_core.latent.space import LatentSpace
from facemath_core.latent.worked_example import work_out

ROOT = Path(__file__).parents[2]
EXAMPLE_LABELS = ROOT / "examples" / "faces" / "list_attr_celeba.txt"
HEADLINE = "mean(Smiling & ~Male) - mean(~Smiling & ~Male) + mean(~Smiling & Male)"


def read_label_file(path: Path) -> tuple[list[str], dict[str, set[str]]]:
    """CelebA's list_attr_celeba.txt read by hand: (attribute names, face name -> the attributes it has (+1))."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    attributes = lines[1].split()
    faces = {}
    for line in lines[2:]:
        name, *values = line.split()
        assert len(values) == len(attributes), line
        faces[name] = {a for a, v in zip(attributes, values, strict=True) if int(v) == 1}
    assert len(faces) == int(lines[0])
    return attributes, faces


def with_attribute(faces: dict[str, set[str]], attribute: str) -> set[str]:
    return {name for name, has in faces.items() if attribute in has}


def space_from(path: Path, flagged: set[str] = frozenset(), dims: int = 6, seed: int = 0) -> LatentSpace:
    """Random latents for the faces of a label file, labelled by it, with `flagged` marked as failed projections."""
    attributes, faces = read_label_file(path)
    names = sorted(faces)
    z = np.random.default_rng(seed).normal(size=(len(names), dims)).astype(np.float32)
    latents = Latents(names, z, "gan", "generator", 1, "projection")
    latents.flagged = np.array([n in flagged for n in names])
    labels = np.array([[a in faces[n] for a in attributes] for n in names])
    return LatentSpace(latents, attributes, labels, str(path))


@pytest.fixture(scope="module")
def operators():
    registry = load_registry(builtins_only=True)
    return {name: registry.get("operator", name) for name in registry.names("operator")}


def names_of(space: LatentSpace, rows) -> set[str]:
    return {space.latents.names[r] for r in rows}


# --- the bug of issue 24, on the quickstart's own faces -------------------------------------------------------------


def test_the_headline_example_never_uses_the_faces_it_skips(operators):
    """The issue's run: 000003.png (a man) and 000005.png (smiling) flagged; mean(~Smiling & ~Male) used exactly
    those two. Each term must average its group by the labels, minus the flagged faces, and the note must name
    the flagged faces a group left out, no others."""
    attributes, faces = read_label_file(EXAMPLE_LABELS)
    flagged = {"000003.png", "000005.png"}
    space = space_from(EXAMPLE_LABELS, flagged)
    everyone = set(faces)
    smiling, male = with_attribute(faces, "Smiling"), with_attribute(faces, "Male")
    groups = [smiling - male, everyone - smiling - male, (everyone - smiling) & male]
    evaluator = Evaluator(space, operators, exemplars=0)
    example = work_out(evaluator, HEADLINE, variants=0)
    for term, group in zip(example.terms, groups, strict=True):
        assert names_of(space, term.rows) == group - flagged
        np.testing.assert_allclose(term.z, space.z[sorted(term.rows)].mean(0), atol=1e-6)
    assert not names_of(space, example.terms[1].rows) & flagged  # what the issue saw: both flagged faces used
    in_a_group = flagged & set().union(*groups)  # 000003 is a man who does not smile: in the third group
    assert names_of(space, evaluator.skipped) == in_a_group
    names = ", ".join(sorted(in_a_group))
    assert evaluator.flag_notes() == [
        f"skipped {len(in_a_group)} flagged face{'s' if len(in_a_group) > 1 else ''} (failed projections: {names}); "
        f"--include-flagged uses them"
    ]
    everything = work_out(Evaluator(space, operators, exemplars=0, include_flagged=True), HEADLINE, variants=0)
    for term, group in zip(everything.terms, groups, strict=True):
        assert names_of(space, term.rows) == group


# --- every operator, nested, against Python sets --------------------------------------------------------------------


@st.composite
def group_expressions(draw, attributes: list[str], depth: int = 0):
    """(text, tree, level) for a random group expression. `tree` is nested tuples, ("name", a), ("not", t),
    ("and", l, r) or ("or", l, r), that `expected_set` turns into face names with Python set operations; `text`
    has parentheses only where the grammar needs them (| looser than &, ~ tightest), plus random redundant ones,
    double negations and spacing."""
    kind = draw(st.sampled_from(["name", "name", "not", "and", "or"] if depth < 4 else ["name"]))
    if kind == "name":
        attribute = draw(st.sampled_from(attributes))
        text, tree, level = attribute, ("name", attribute), 3
    elif kind == "not":
        inner, inner_tree, inner_level = draw(group_expressions(attributes, depth + 1))
        text, tree, level = "~" + (f"({inner})" if inner_level < 3 else inner), ("not", inner_tree), 3
    else:
        op, level = ("&", 2) if kind == "and" else ("|", 1)
        left, left_tree, left_level = draw(group_expressions(attributes, depth + 1))
        right, right_tree, right_level = draw(group_expressions(attributes, depth + 1))
        # a | b & c is a | (b & c): a looser operand needs parentheses; equal levels chain (both are associative).
        left = f"({left})" if left_level < level else left
        right = f"({right})" if right_level < level else right
        gap = draw(st.sampled_from([" ", ""]))
        text, tree = f"{left}{gap}{op}{gap}{right}", (kind, left_tree, right_tree)
    if draw(st.integers(0, 5)) == 0:
        text, level = f"({text})", 3
    return text, tree, level


def expected_set(tree: tuple, faces: dict[str, set[str]]) -> set[str]:
    """The face names a group tree stands for, by Python set operations on the parsed label file."""
    if tree[0] == "name":
        return with_attribute(faces, tree[1])
    if tree[0] == "not":
        return set(faces) - expected_set(tree[1], faces)
    left, right = expected_set(tree[1], faces), expected_set(tree[2], faces)
    return left & right if tree[0] == "and" else left | right


def test_the_generator_of_expressions_says_what_the_grammar_says():
    """A few hand-written cases of the generator's contract (precedence, negation), so the property test below
    stands on expectations checked independently of the evaluator."""
    attributes, faces = read_label_file(EXAMPLE_LABELS)
    everyone = set(faces)
    s, m, e = (with_attribute(faces, a) for a in ("Smiling", "Male", "Eyeglasses"))
    space = space_from(EXAMPLE_LABELS)
    cases = {
        "Smiling | Male & Eyeglasses": s | (m & e),
        "(Smiling | Male) & Eyeglasses": (s | m) & e,
        "~Smiling & Male": (everyone - s) & m,
        "~(Smiling & Male)": everyone - (s & m),
        "~~Smiling": s,
        "~(Smiling | ~Male) | Eyeglasses & ~Smiling": (everyone - (s | (everyone - m))) | (e & (everyone - s)),
    }
    for text, expected in cases.items():
        group = Evaluator(space, {}).evaluate(text)
        assert isinstance(group, Group) and names_of(space, np.flatnonzero(group.mask)) == expected, text


def label_space(path: Path, flagged_every: int, offset: int) -> tuple[LatentSpace, set[str]]:
    _, faces = read_label_file(path)
    flagged = {name for i, name in enumerate(sorted(faces)) if flagged_every and i % flagged_every == offset}
    return space_from(path, flagged), flagged


@settings(max_examples=300, deadline=None)
@given(data=st.data(), flagged_every=st.sampled_from([0, 2, 3, 5]), offset=st.integers(0, 1))
def test_random_group_expressions_select_the_faces_the_labels_say(operators, data, flagged_every, offset):
    attributes, faces = read_label_file(EXAMPLE_LABELS)
    space, flagged = label_space(EXAMPLE_LABELS, flagged_every, offset % max(flagged_every, 1))
    text, tree, _ = data.draw(group_expressions(attributes))
    expected = expected_set(tree, faces)

    # The group itself is the exact set, flags or not.
    group = Evaluator(space, operators).evaluate(text)
    assert isinstance(group, Group) and names_of(space, np.flatnonzero(group.mask)) == expected, text

    # mean(GROUP) averages the group minus its flagged faces, and says which flagged faces it left out.
    evaluator = Evaluator(space, operators, exemplars=0)
    kept = expected - flagged
    if kept:
        value = evaluator.latent(f"mean({text})")
        assert names_of(space, value.rows) == kept, text
        rows = sorted(space.latents.names.index(n) for n in kept)
        np.testing.assert_allclose(value.z, space.z[rows].mean(0), atol=1e-5)
    else:
        with pytest.raises(ExpressionError) as error:
            evaluator.latent(f"mean({text})")
        assert ("is flagged" if expected else "is empty") in error.value.message, (text, error.value.message)
        # The column of the group's first name or ~, past the parentheses that open it (mean( is columns 1-5).
        assert error.value.column == 6 + len(text) - len(text.lstrip("( "))
    assert names_of(space, evaluator.skipped) == expected & flagged

    # --include-flagged: the whole group.
    everything = Evaluator(space, operators, exemplars=0, include_flagged=True)
    if expected:
        assert names_of(space, everything.latent(f"mean({text})").rows) == expected
    assert not everything.skipped

    # With exemplars, the drawn faces come from the group minus its flagged faces.
    if kept:
        drawn = Evaluator(space, operators, exemplars=2, seed=7).latent(f"mean({text})")
        assert names_of(space, drawn.rows) <= kept and len(drawn.rows) == min(2, len(kept))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), flagged_every=st.sampled_from([0, 3]))
def test_matched_groups_are_drawn_from_the_groups_without_their_flagged_faces(
    operators, data, flagged_every, train_faces
):
    """--match on random group pairs over 160 labelled faces: every matched face is in its group by the labels,
    none is flagged, and the sets are matched (the same values of the matching attributes, set by set)."""
    path = train_faces / "list_attr_celeba.txt"
    attributes, faces = read_label_file(path)
    space, flagged = label_space(path, flagged_every, 1)
    first, first_tree, _ = data.draw(group_expressions(attributes))
    second, second_tree, _ = data.draw(group_expressions(attributes))
    groups = [expected_set(first_tree, faces) - flagged, expected_set(second_tree, faces) - flagged]
    evaluator = Evaluator(space, operators, exemplars=0, match_on=["Eyeglasses"])
    try:
        terms, _ = evaluator.terms(f"mean({first}) - mean({second})")
    except FacemathError as error:  # an empty group, or no stratum with a face of both
        message = str(error)
        if groups[0] and groups[1]:
            assert "no faces of" in message, message
            strata = [{"Eyeglasses" in faces[n] for n in g} for g in groups]
            assert not strata[0] & strata[1]  # no stratum shared: the refusal is right
        else:
            assert "is empty" in message or "is flagged" in message, message
        return
    rows = [names_of(space, term.rows) for _, _, term in terms]
    assert rows[0] <= groups[0] and rows[1] <= groups[1] and rows[0] and rows[1]
    assert not (rows[0] | rows[1]) & flagged
    # Matched: set by set the same value of Eyeglasses, so the same count of each value in both groups.
    assert sorted("Eyeglasses" in faces[n] for n in rows[0]) == sorted("Eyeglasses" in faces[n] for n in rows[1])
    # Every matched set there is (--exemplars 0): per value, the smaller group's count.
    for value in (True, False):
        counts = [sum(("Eyeglasses" in faces[n]) == value for n in g) for g in groups]
        assert sum(("Eyeglasses" in faces[n]) == value for n in rows[0]) == min(counts)


# --- the analogy scorer --------------------------------------------------------------------------------------------


def test_an_analogy_whose_only_face_of_a_concept_is_flagged_is_left_out_not_an_error(operators):
    """score_analogies skips a target with an empty concept; a concept whose faces are all flagged is empty too."""
    attributes, faces = read_label_file(EXAMPLE_LABELS)
    smiling, male = with_attribute(faces, "Smiling"), with_attribute(faces, "Male")
    smiling_women = sorted(smiling - male)
    space = space_from(EXAMPLE_LABELS, set(smiling_women))  # every smiling woman flagged
    names = list(attributes)

    def render(z):
        return np.zeros((len(z), 4, 4, 3), np.float32)

    def judge(images):
        return np.ones((len(images), len(names)), np.float32)

    scores = score_analogies(space, operators, render, judge, names, ["Smiling"], "Male", exemplars=1, trials=2)
    assert scores == []  # left out, as an analogy with no smiling woman at all would be
    unflagged = space_from(EXAMPLE_LABELS)
    scores = score_analogies(unflagged, operators, render, judge, names, ["Smiling"], "Male", exemplars=1, trials=2)
    assert [s.target for s in scores] == ["Smiling"]
