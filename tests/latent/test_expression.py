"""The expression language of `facemath math`: parser (with property tests on random expressions) and evaluator."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facemath_core.host.manager import load_registry
from facemath_core.latent.arithmetic import Evaluator
from facemath_core.latent.attribute_vectors import attribute_vectors
from facemath_core.latent.expression import (
    Binary,
    Call,
    ExpressionError,
    Name,
    Number,
    Unary,
    additive_terms,
    parse,
    same_tree,
    tokenize,
    unparse,
)
from facemath_core.latent.latents import Latents
from facemath_core.latent.space import LatentSpace

# --- random trees ----------------------------------------------------------------------------------------------

names = st.sampled_from(["a", "b", "c", "Smiling", "x_1", "face-2.png", "000007", "o'neil.png", 'say "hi"'])
numbers = st.sampled_from(["0", "1", "2.5", ".5", "3e2", "0.25"])


def leaves():
    return st.one_of(
        names.map(lambda n: Name(n, 0, quoted=not n.replace("_", "").isalnum() or n.isdigit())),
        numbers.map(lambda t: Number(float(t), t, 0)),
    )


def extend(children):
    return st.one_of(
        st.tuples(st.sampled_from("+-*/&|"), children, children).map(lambda t: Binary(t[0], t[1], t[2], 0)),
        st.tuples(st.sampled_from("-~"), children).map(lambda t: Unary(t[0], t[1], 0)),
        st.tuples(st.sampled_from(["mean", "lerp", "f"]), st.lists(children, min_size=1, max_size=3)).map(
            lambda t: Call(t[0], tuple(t[1]), 0)
        ),
    )


trees = st.recursive(leaves(), extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_unparse_then_parse_gives_the_same_tree(tree):
    assert same_tree(parse(unparse(tree)), tree)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1.+-*/&|~(), '\"_xyz", max_size=30))
def test_any_text_parses_or_raises_an_error_with_a_column(text):
    try:
        parse(text)
    except ExpressionError as exc:
        assert 1 <= exc.column <= len(text) + 1
        assert str(exc).startswith(f"expression column {exc.column}: ")


@settings(max_examples=200, deadline=None)
@given(trees)
def test_spacing_does_not_change_the_tree(tree):
    text = unparse(tree)
    spaced = " ".join(t.text for t in tokenize(text) if t.kind != "end")
    assert same_tree(parse(spaced), tree)


def test_precedence_and_columns():
    tree = parse("a - 2 * b + c")
    assert [(sign, unparse(node)) for sign, node in additive_terms(tree)] == [(1, "a"), (-1, "2 * b"), (1, "c")]
    tree = parse("mean(Smiling & ~Male | Bangs)")
    assert isinstance(tree, Call) and tree.args[0].op == "|" and tree.args[0].left.op == "&"
    assert tree.args[0].left.right == Unary("~", Name("Male", 17), 16)
    assert parse("-a * b").left == Unary("-", Name("a", 2), 1)


@pytest.mark.parametrize(
    "text, column, fragment",
    [
        ("", 1, "empty"),
        ("a +", 4, "ends too early"),
        ("a + * b", 5, "unexpected '*'"),
        ("mean(a, b", 10, "expected ')'"),
        ("a b", 3, "after a complete expression"),
        ("a $ b", 3, "unexpected character '$'"),
        ("'abc", 1, "unclosed quote"),
        ("mean(a,)", 8, "unexpected ')'"),
        ("''", 1, "empty quoted name"),
    ],
)
def test_syntax_errors_point_at_the_column(text, column, fragment):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.column == column and fragment in str(info.value)


# --- evaluation ------------------------------------------------------------------------------------------------


def make_space(n=12, d=6, seed=0):
    rng = np.random.default_rng(seed)
    names = [f"{i:06d}.png" for i in range(n)]
    labels = np.stack([np.arange(n) % 2 == 0, np.arange(n) % 3 == 0, np.arange(n) < 2], axis=1)
    latents = Latents(names, rng.normal(size=(n, d)).astype(np.float32), "gan", "generator", 1, "projection")
    return LatentSpace(latents, ["Smiling", "Male", "Hat"], labels, "test")


@pytest.fixture(scope="module")
def operators():
    registry = load_registry(builtins_only=True)
    return {n: registry.get("operator", n) for n in registry.names("operator")}


def arithmetic_trees():
    leaf = st.sampled_from(["000000", "000003", "'000005.png'", "000011"])  # every subexpression is a latent

    def grow(children):
        return st.one_of(
            st.tuples(children, st.sampled_from("+-"), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["2", "0.5", "-3"]), children).map(lambda t: f"{t[0]} * {t[1]}"),
            st.tuples(children, children).map(lambda t: f"lerp({t[0]}, {t[1]}, 0.25)"),
            children.map(lambda c: f"mean({c}, {c})"),
        )

    return st.recursive(leaf, grow, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(arithmetic_trees())
def test_evaluation_matches_numpy(operators, text):
    """The evaluator agrees with Python evaluating the same text over numpy arrays (eval only here, in a test)."""
    space = make_space()
    z = {f"n{i:06d}": space.z[i].astype(np.float64) for i in range(12)}
    python = re.sub(r"\b(\d{6})\b", r"n\1", text.replace("'000005.png'", "000005"))
    env = {**z, "lerp": lambda a, b, t: (1 - t) * np.asarray(a) + t * np.asarray(b), "mean": lambda *a: np.mean(a, 0)}
    expected = eval(python, {"__builtins__": {}}, env)  # noqa: S307
    value = Evaluator(space, operators).evaluate(text)
    np.testing.assert_allclose(value.z, expected, rtol=1e-4, atol=1e-4)


def test_groups_select_faces_by_attribute(operators):
    space = make_space()
    evaluator = Evaluator(space, operators, exemplars=0)
    smiling_women = np.flatnonzero(space.labels[:, 0] & ~space.labels[:, 1])
    value = evaluator.latent("mean(Smiling & ~Male)")
    np.testing.assert_allclose(value.z, space.z[smiling_women].mean(0), atol=1e-6)
    assert value.rows == tuple(smiling_women)
    either = evaluator.latent("mean(Smiling | Male)")
    assert set(either.rows) == set(np.flatnonzero(space.labels[:, 0] | space.labels[:, 1]))


def test_mean_of_a_group_draws_the_same_exemplars_each_time(operators):
    space = make_space()
    a = Evaluator(space, operators, exemplars=3, seed=5).latent("mean(Smiling)")
    b = Evaluator(space, operators, exemplars=3, seed=5).latent("mean(Smiling)")
    c = Evaluator(space, operators, exemplars=3, seed=6).latent("mean(Smiling)")
    assert len(a.rows) == 3 and a.rows == b.rows and all(space.labels[r, 0] for r in a.rows)
    assert len(np.flatnonzero(space.labels[:, 0])) == 6 and a.rows != c.rows  # 3 of 6: another seed, another draw


def test_names_numbers_and_stems(operators):
    space = make_space()
    evaluator = Evaluator(space, operators)
    np.testing.assert_allclose(evaluator.latent("000004").z, space.z[4])
    np.testing.assert_allclose(evaluator.latent("'000004.png' * 2").z, 2 * space.z[4])
    assert evaluator.evaluate("1 + 2 * 3") == 7.0  # 1, 2 and 3 are not stems: numbers
    np.testing.assert_allclose(evaluator.latent("slerp(000001, 000002, 0)").z, space.z[1], atol=1e-5)
    np.testing.assert_allclose(evaluator.latent("project_out(000001, 000002)").z @ space.z[2], 0, atol=1e-4)


@pytest.mark.parametrize(
    "text, column, fragment",
    [
        ("000001 + Smilng", 10, "unknown latent or attribute 'Smilng'; did you mean Smiling?"),
        ("mean(Hat & ~Smiling & Male)", 6, "the group Hat & ~Smiling & Male is empty"),
        ("000001 + Smiling", 10, "is a group of faces (Smiling); turn it into a latent with mean(Smiling)"),
        ("000001 * 000002", 8, "cannot multiply two latents"),
        ("000001 + 2", 10, "cannot add a number and a latent"),
        ("000001 & Male", 1, "'&' combines groups of faces"),
        ("~000001", 2, "'~' combines groups"),
        ("slerp(000001, 000002)", 1, "operator 'slerp' (facemath"),  # its provider: a plugin's arity
        ("slurp(000001, 000002, 0.5)", 1, "unknown function 'slurp'; did you mean slerp"),
        ("000001 / 0", 10, "division by zero"),
        ("000001 / (1 - 1)", 11, "division by zero"),  # the start of the divisor, not its operator
        ("000001 + 2 * 3", 10, "cannot add a number and a latent"),
        ("000001 / (000002 - 000003)", 11, "can only divide by a number"),
        ("2 * 3", 1, "the number 6, not a latent"),
        ("attr(Smilin)", 6, "unknown attribute 'Smilin'; did you mean Smiling?"),
        ("attr(000001)", 1, "attr takes one attribute name"),
        ("mean()", 1, "mean() needs latents or a group"),
    ],
)
def test_evaluation_errors_point_at_the_column(operators, text, column, fragment):
    with pytest.raises(ExpressionError) as info:
        Evaluator(make_space(), operators).latent(text)
    assert info.value.column == column, str(info.value)
    assert fragment in str(info.value)


def test_attributes_need_labels(operators):
    space = make_space()
    space = LatentSpace(space.latents)
    with pytest.raises(ExpressionError, match="no attribute file is loaded"):
        Evaluator(space, operators).latent("mean(Smiling)")
    with pytest.raises(Exception, match="needs attribute labels"):
        Evaluator(space, operators).latent("attr(Smiling)")


def test_operator_plugins_cannot_take_builtin_names(operators):
    from facemath_core.base.errors import FacemathError
    from facemath_core.host.components import Operator

    with pytest.raises(FacemathError, match="'mean' is taken by a built-in"):
        Evaluator(make_space(), {**operators, "mean": Operator("mean", "x", lambda a: a)})


# --- attribute vectors -----------------------------------------------------------------------------------------


def correlated_latents(n=4000, d=5, seed=0):
    """z = 2 e0 * Smiling + 3 e1 * Male + noise, with Smiling much more frequent among men."""
    rng = np.random.default_rng(seed)
    male = rng.random(n) < 0.5
    smiling = rng.random(n) < np.where(male, 0.8, 0.2)
    z = rng.normal(0, 0.3, (n, d))
    z[:, 0] += 2 * smiling
    z[:, 1] += 3 * male
    return z, np.stack([smiling, male], axis=1)


def test_bias_correction_removes_the_correlated_attribute():
    z, labels = correlated_latents()
    raw = attribute_vectors(z, labels, ["Smiling", "Male"], corrected=False)
    corrected = attribute_vectors(z, labels, ["Smiling", "Male"])
    # A plain difference of means drags Male along with Smiling; the corrected vector does not.
    assert raw[0, 1] > 1.0
    np.testing.assert_allclose(corrected[0], [2, 0, 0, 0, 0], atol=0.05)
    np.testing.assert_allclose(corrected[1], [0, 3, 0, 0, 0], atol=0.05)


def test_independent_balanced_attributes_give_the_difference_of_means():
    z, labels = correlated_latents()
    labels = np.stack(np.meshgrid([0, 1], [0, 1]), -1).reshape(-1, 2).astype(bool).repeat(1000, 0)
    z = z[: len(labels)] + labels @ np.array([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])
    np.testing.assert_allclose(
        attribute_vectors(z, labels, "ab", corrected=False), attribute_vectors(z, labels, "ab"), atol=1e-6
    )


def test_constant_attributes_have_no_vector(operators):
    space = make_space()
    space.labels[:, 2] = False
    with pytest.raises(ExpressionError, match="every one of the 12 faces lacks it"):
        Evaluator(space, operators).latent("attr(Hat)")
    assert np.isfinite(Evaluator(space, operators).latent("attr(Smiling)").z).all()


def _latents_from_folders(tmp_path, labelled):
    """Two faces from each of two folders; `labelled` says which folders' attribute files cover their faces."""
    from facemath_core.data.folders import write_attribute_file
    from facemath_core.latent.latents import save_latents

    names, inputs = [], []
    for folder, covers in zip(("one", "two"), labelled, strict=True):
        (tmp_path / folder).mkdir()
        files = [f"{folder}_{i}.png" for i in range(2)]
        names += files
        inputs += [str(tmp_path / folder / f) for f in files]
        listed = files if covers else ["someone_else.png"]
        write_attribute_file(
            tmp_path / folder / "list_attr_celeba.txt", listed, ["Smiling"], np.ones((len(listed), 1), int)
        )
    z = np.zeros((4, 3), np.float32)
    latents = Latents(names, z, "vae", "vae_decoder", 1, "encoder", config={"inputs": inputs})
    save_latents(tmp_path / "l.npz", latents)
    return tmp_path / "l.npz"


def test_two_attribute_files_are_an_error_not_a_silent_miss(tmp_path):
    from facemath_core.base.errors import FacemathError
    from facemath_core.latent.space import open_space

    path = _latents_from_folders(tmp_path, (True, True))
    with pytest.raises(FacemathError, match="different attribute files .*one.*two.*--attributes"):
        open_space([path])


def test_a_found_attribute_file_that_misses_faces_only_stops_what_needs_labels(tmp_path, operators):
    from facemath_core.base.errors import FacemathError
    from facemath_core.latent.space import open_space

    (tmp_path / "faces").mkdir()
    path = _latents_from_folders(tmp_path / "faces", (True, False))
    (tmp_path / "faces" / "two" / "list_attr_celeba.txt").unlink()  # only folder one's file is found
    space = open_space([path])
    assert space.labels is None
    evaluator = Evaluator(space, operators)
    assert evaluator.latent("one_0 - one_1 + two_0").z.shape == (3,)  # plain arithmetic needs no labels
    with pytest.raises(ExpressionError, match="has no labels for 2 of the 4 latents"):
        evaluator.latent("mean(Smiling)")
    with pytest.raises(FacemathError, match="needs attribute labels: .*has no labels for 2 of the 4"):
        evaluator.latent("attr(Smiling)")
    with pytest.raises(FacemathError, match="has no labels for 2 of the 4"):  # asked for by name: an error at once
        open_space([path], tmp_path / "faces" / "one")


# --- limits: long chains, deep nesting ---------------------------------------------------------------------------


def test_long_flat_sums_parse_print_and_evaluate_without_recursion(operators):
    """5000 names: parsing, unparse, additive_terms and evaluation loop over the chain; the sum matches numpy's."""
    from facemath_core.latent.expression import MAX_DEPTH

    space = make_space()
    stems = [f"{i % 12:06d}" for i in range(5000)]
    text = " + ".join(stems[:2500]) + " - " + " - ".join(stems[2500:])
    tree = parse(text)
    assert same_tree(parse(unparse(tree)), tree)
    assert len(additive_terms(tree)) == 5000
    signs = np.array([1.0] * 2500 + [-1.0] * 2500)
    rows = [i % 12 for i in range(5000)]
    expected = (signs[:, None] * space.latents.z[rows]).sum(axis=0)
    value = Evaluator(space, operators).latent(text)
    np.testing.assert_allclose(value.z, expected, rtol=1e-4, atol=1e-3)
    assert MAX_DEPTH == 100


@pytest.mark.parametrize(
    "make, column",
    [
        (lambda n: "(" * n + "a" + ")" * n, 101),
        (lambda n: "a + " + "-" * n + "b", 105),
        (lambda n: "mean(" * n + "a" + ")" * n, 501),
        (lambda n: "~" * n + "Smiling", 101),
    ],
)
def test_nesting_is_limited_at_the_column_where_it_passes_100(make, column):
    parse(make(100))  # exactly the limit parses
    with pytest.raises(ExpressionError) as info:
        parse(make(150))
    assert info.value.column == column and "nested more than 100 levels" in str(info.value)


def test_unparse_drops_only_the_parentheses_the_grammar_does_not_need():
    assert unparse(parse("(a - b) - c")) == "a - b - c"
    assert unparse(parse("a - (b - c)")) == "a - (b - c)"
    assert unparse(parse("(a + b) * c")) == "(a + b) * c"
    assert unparse(parse("(a & b) | c")) == "a & b | c"
    assert unparse(parse("(a | b) & c")) == "(a | b) & c"


def test_flagged_faces_are_left_out_of_groups_unless_included(operators):
    space = make_space()
    space.latents.flagged = np.zeros(12, bool)
    space.latents.flagged[[0, 4]] = True  # both smiling (even rows)
    evaluator = Evaluator(space, operators, exemplars=0)
    value = evaluator.latent("mean(Smiling)")
    assert value.rows == (2, 6, 8, 10)
    np.testing.assert_allclose(value.z, space.z[[2, 6, 8, 10]].mean(0), atol=1e-6)
    assert evaluator.skipped == {0, 4}
    assert evaluator.flag_notes() == [
        "skipped 2 flagged faces (failed projections: 000000.png, 000004.png); --include-flagged uses them"
    ]
    # attr() equals the vector of the same space with the flagged faces removed.
    kept = [i for i in range(12) if i not in (0, 4)]
    smaller = LatentSpace(
        Latents([space.latents.names[i] for i in kept], space.z[kept], "gan", "generator", 1, "projection"),
        space.attribute_names,
        space.labels[kept],
        "test",
    )
    np.testing.assert_allclose(
        evaluator.latent("attr(Male)").z, Evaluator(smaller, operators).latent("attr(Male)").z, atol=1e-6
    )
    everyone = Evaluator(space, operators, exemplars=0, include_flagged=True)
    assert everyone.latent("mean(Smiling)").rows == (0, 2, 4, 6, 8, 10) and not everyone.flag_notes()
    named = Evaluator(space, operators)
    np.testing.assert_allclose(named.latent("000004").z, space.z[4])  # asked for by name: used, and said so
    assert named.flag_notes() == ["000004.png is flagged as a failed projection; used because it is named"]


def test_without_flagged_drops_the_flagged_rows():
    from facemath_core.latent.space import without_flagged

    space = make_space()
    assert without_flagged(space) == (space, [])  # no flags: the same space
    space.latents.flagged = np.arange(12) % 5 == 1  # rows 1, 6, 11
    smaller, skipped = without_flagged(space)
    assert skipped == ["000001.png", "000006.png", "000011.png"]
    kept = [0, 2, 3, 4, 5, 7, 8, 9, 10]
    assert smaller.latents.names == [f"{i:06d}.png" for i in kept]
    np.testing.assert_array_equal(smaller.z, space.z[kept])
    np.testing.assert_array_equal(smaller.labels, space.labels[kept])
