"""Attribute-matched exemplars (facemath_core.latent.matching) against a world where the answer is known.

The latents are linear in the attributes: z = sum of the face's attribute directions (+ noise), so the smile
vector is exactly the Smiling direction. Among the women, smiling faces mostly wear glasses and the others mostly
do not: the unmatched mean(Smiling & ~Male) - mean(~Smiling & ~Male) carries part of the Eyeglasses direction,
the matched one must not. Expected values are computed here with numpy from the directions and the noise.
"""

import json
from collections import Counter

import numpy as np
import pytest

from facemath_core.base.errors import FacemathError
from facemath_core.host.manager import load_registry
from facemath_core.latent.arithmetic import Evaluator
from facemath_core.latent.latents import Latents, load_latents
from facemath_core.latent.space import LatentSpace

NAMES = ["Smiling", "Male", "Eyeglasses", "Wearing_Hat", "Black_Hair", "Blond_Hair"]
SMILE = "mean(Smiling & ~Male) - mean(~Smiling & ~Male)"
ANALOGY = f"{SMILE} + mean(~Smiling & Male)"


def linear_world(noise: float = 0.0, n: int = 400, seed: int = 0):
    """(space, directions (K, D), noise (N, D)) with a Smiling-Eyeglasses confounder among the women."""
    rng = np.random.default_rng(seed)
    smiling, male = rng.random(n) < 0.5, rng.random(n) < 0.5
    glasses = rng.random(n) < np.where(smiling & ~male, 0.8, 0.2)  # the confounder
    hat = rng.random(n) < 0.4
    hair = rng.integers(0, 3, n)  # 0 black, 1 blond, 2 neither: two exclusive attributes
    labels = np.stack([smiling, male, glasses, hat, hair == 0, hair == 1], axis=1)
    directions = rng.normal(size=(len(NAMES), 8))
    noises = noise * rng.normal(size=(n, 8))
    z = (labels @ directions + noises).astype(np.float32)
    names = [f"{i:06d}.png" for i in range(n)]
    latents = Latents(names, z, "gan", "generator", 1, "projection")
    return LatentSpace(latents, NAMES, labels, "test"), directions, noises


@pytest.fixture(scope="module")
def operators():
    registry = load_registry(builtins_only=True)
    return {name: registry.get("operator", name) for name in registry.names("operator")}


def others(labels, rows, skip):
    """The multiset of each row's values of the attributes not in `skip`."""
    keep = [k for k in range(labels.shape[1]) if NAMES[k] not in skip]
    return Counter(tuple(labels[r, keep]) for r in rows)


def test_matched_difference_is_exactly_the_attribute_direction(operators):
    space, directions, _ = linear_world()
    smile = directions[NAMES.index("Smiling")]
    unmatched = Evaluator(space, operators, exemplars=0).latent(SMILE).z
    # The confounder is real in this world: the unmatched difference carries Eyeglasses along.
    women = ~space.labels[:, 1]
    share = [space.labels[women & (space.labels[:, 0] == s), 2].mean() for s in (True, False)]
    assert share[0] - share[1] > 0.4
    groups = [women & space.labels[:, 0], women & ~space.labels[:, 0]]
    bias = (space.labels[groups[0]].mean(0) - space.labels[groups[1]].mean(0))[2:] @ directions[2:]
    np.testing.assert_allclose(unmatched, smile + bias, atol=1e-5)
    assert np.linalg.norm(bias) > 0.4 * np.linalg.norm(directions[NAMES.index("Eyeglasses")])
    for exemplars in (0, 3, 10):
        matched = Evaluator(space, operators, exemplars=exemplars, match=True).latent(SMILE).z
        np.testing.assert_allclose(matched, smile, atol=1e-5)


def test_matched_analogy_adds_the_attribute_to_the_base_faces(operators):
    space, directions, noises = linear_world(noise=0.3)
    evaluator = Evaluator(space, operators, exemplars=5, seed=4, match=True)
    (_, _, a), (_, _, b), (_, _, c) = evaluator.terms(ANALOGY)[0]
    result = evaluator.latent(ANALOGY)
    assert [len(t.rows) for t in (a, b, c)] == [5, 5, 5]
    # Matched sets: the same mix of the other attributes in every group (hair colours left out, Smiling and Male
    # define the groups); Black_Hair and Blond_Hair never co-occur with each other, but neither defines a group.
    assert others(space.labels, a.rows, {"Smiling", "Male"}) == others(space.labels, b.rows, {"Smiling", "Male"})
    assert others(space.labels, a.rows, {"Smiling", "Male"}) == others(space.labels, c.rows, {"Smiling", "Male"})
    assert all(space.labels[r, 0] and not space.labels[r, 1] for r in a.rows)
    # Known answer: the smile direction + the base faces + the exemplars' noise, nothing of the other attributes.
    noise = noises[list(a.rows)].mean(0) - noises[list(b.rows)].mean(0)
    expected = directions[0] + space.z[list(c.rows)].mean(0) + noise
    np.testing.assert_allclose(result.z, expected, atol=1e-4)


def test_scaled_and_grouped_terms_are_matched_too(operators):
    space, directions, _ = linear_world()
    evaluator = Evaluator(space, operators, exemplars=0, match=True)
    scaled = "mean(~Smiling & Male) + 2 * (mean(Smiling & ~Male) - mean(~Smiling & ~Male)) / 1"
    (_, _, c), (_, _, _) = evaluator.terms(scaled)[0]
    np.testing.assert_allclose(evaluator.latent(scaled).z, c.z + 2 * directions[0], atol=1e-5)
    inside = "mean(~Smiling & Male) + lerp(mean(Smiling & ~Male), mean(~Smiling & ~Male), 0.5)"
    with pytest.raises(FacemathError, match="found 1"):  # a mean inside a function is not a term of the sum
        Evaluator(space, operators, match=True).latent(inside)


def test_matching_leaves_out_attributes_exclusive_with_a_group(operators):
    space, directions, _ = linear_world()
    blond = "mean(Blond_Hair & ~Male) - mean(~Blond_Hair & ~Male)"
    evaluator = Evaluator(space, operators, exemplars=0, match=True)
    (_, _, a), (_, _, b) = evaluator.terms(blond)[0]
    assert "Black_Hair" not in evaluator.match_notes[0] and "Eyeglasses" in evaluator.match_notes[0]
    # Matched on glasses and hats only: the blond vector also switches black hair off in the right share.
    skip = {"Blond_Hair", "Male", "Black_Hair"}
    assert others(space.labels, a.rows, skip) == others(space.labels, b.rows, skip)
    black = space.labels[list(b.rows), NAMES.index("Black_Hair")].mean()
    expected = directions[NAMES.index("Blond_Hair")] - black * directions[NAMES.index("Black_Hair")]
    np.testing.assert_allclose(a.z - b.z, expected, atol=1e-5)


def test_match_on_a_list_and_on_other_labels(operators):
    space, directions, _ = linear_world()
    only_glasses = Evaluator(space, operators, exemplars=0, match_on=["Eyeglasses"]).latent(SMILE)
    evaluator = Evaluator(space, operators, exemplars=0, match_on=["Eyeglasses"])
    (_, _, a), (_, _, b) = evaluator.terms(SMILE)[0]
    assert others(space.labels, a.rows, {"Smiling", "Male", "Wearing_Hat", "Black_Hair", "Blond_Hair"}) == others(
        space.labels, b.rows, {"Smiling", "Male", "Wearing_Hat", "Black_Hair", "Blond_Hair"}
    )
    hat, black, blond = (space.labels[:, NAMES.index(n)] for n in ("Wearing_Hat", "Black_Hair", "Blond_Hair"))
    rest = sum(
        (d[list(a.rows)].mean() - d[list(b.rows)].mean()) * directions[NAMES.index(n)]
        for d, n in ((hat, "Wearing_Hat"), (black, "Black_Hair"), (blond, "Blond_Hair"))
    )
    np.testing.assert_allclose(only_glasses.z, directions[0] + rest, atol=1e-5)
    # Matching on another table (as the oracle's judgement would be): its Eyeglasses column is what counts.
    judged = space.labels[:, [2]].copy()
    same = Evaluator(space, operators, exemplars=0, match=True, match_labels=(["Eyeglasses"], judged)).latent(SMILE)
    np.testing.assert_allclose(same.z, only_glasses.z, atol=1e-6)


def test_matching_errors_name_the_groups(operators):
    space, _, _ = linear_world(n=60)
    with pytest.raises(FacemathError, match=r"no faces of mean\(Smiling\), mean\(~Smiling\) share"):
        Evaluator(space, operators, match_on=["Smiling"]).latent("mean(Smiling) - mean(~Smiling)")
    with pytest.raises(FacemathError, match=r"only \d+ matched sets of faces for mean\(Smiling & ~Male\)"):
        Evaluator(space, operators, exemplars=59, match=True).latent(SMILE)
    with pytest.raises(FacemathError, match="needs two or more mean"):
        Evaluator(space, operators, match=True).latent("mean(Smiling) * 2")
    with pytest.raises(FacemathError, match="--match-on Glasses: not an attribute"):
        Evaluator(space, operators, match_on=["Glasses"]).latent(SMILE)


@pytest.fixture(scope="module")
def encoded(cli, tiny_export, train_faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("match") / "enc"
    result = cli("encode", str(train_faces), "--models", str(tiny_export), "--out", str(out))
    assert result.code == 0, result.stderr
    return out / "latents.npz"


@pytest.mark.slow
def test_math_and_analogy_match_from_the_cli(cli, encoded, train_faces, tiny_export, tmp_path):
    from facemath_core.data.folders import open_faces

    folder = open_faces(train_faces)
    names = folder.attribute_names
    labels = np.stack([folder.attribute(n) for n in names], axis=1).astype(bool)
    expression = "mean(Smiling & ~Male) - mean(~Smiling & ~Male) + mean(~Smiling & Male)"
    common = ["--latents", str(encoded), "--models", str(tiny_export), "--match-on", "Eyeglasses,Bangs"]
    result = cli("math", expression, *common, "--out", str(tmp_path / "m"))
    assert result.code == 0, result.stderr
    assert "matched 3 sets of faces" in result.stderr and "on Eyeglasses, Bangs" in result.stderr
    terms = json.loads((tmp_path / "m" / "terms.json").read_text())["terms"]
    columns = [names.index("Eyeglasses"), names.index("Bangs")]
    sets = [Counter(tuple(labels[folder.names.index(f), columns]) for f in t["faces"]) for t in terms]
    assert sets[0] == sets[1] == sets[2] and sum(sets[0].values()) == 3
    z = load_latents(encoded)
    rows = [[z.names.index(f) for f in t["faces"]] for t in terms]
    expected = z.z[rows[0]].mean(0) - z.z[rows[1]].mean(0) + z.z[rows[2]].mean(0)
    np.testing.assert_allclose(load_latents(tmp_path / "m" / "latents.npz").z[0], expected, atol=1e-5)

    abc = ["mean(~Smiling & ~Male)", "mean(Smiling & ~Male)", "mean(~Smiling & Male)"]
    result = cli("analogy", *abc, *common, "--out", str(tmp_path / "j.png"))
    assert result.code == 0, result.stderr
    assert "matched 3 sets" in result.stderr and (tmp_path / "j.png").is_file()

    result = cli("analogy", "000001", "000002", abc[2], *common, "--out", str(tmp_path / "k.png"))
    assert result.code == 1 and result.stderr.startswith("error: --match needs two or more mean(GROUP)")
    result = cli("math", expression, *common[:4], "--match-on", "Smiling", "--out", str(tmp_path / "n"))
    assert result.code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "error: --match: no faces of mean(Smiling & ~Male), mean(~Smiling & ~Male), mean(~Smiling & Male)" in (
        result.stderr
    )
    assert not (tmp_path / "n").exists() and not (tmp_path / "k.png").exists()


@pytest.mark.slow
def test_match_by_the_oracles_reading_of_the_renders(cli, encoded, tiny_export, tmp_path):
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    z = load_latents(encoded)
    backend = EmbeddedBackend(tiny_export)
    oracle_names = backend.metadata("attribute_oracle")["attribute_names"]
    judged = backend.judge(backend.generate(z.z, z.model)) > 0
    expression = "mean(Smiling & ~Male) - mean(~Smiling & ~Male)"
    result = cli(
        "math", expression, "--latents", str(encoded), "--models", str(tiny_export), "--match-by", "oracle",
        "--match-on", "Eyeglasses,Bangs", "--exemplars", "2", "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    terms = json.loads((tmp_path / "m" / "terms.json").read_text())["terms"]
    columns = [oracle_names.index("Eyeglasses"), oracle_names.index("Bangs")]
    sets = [Counter(tuple(judged[z.names.index(f), columns]) for f in t["faces"]) for t in terms]
    assert sets[0] == sets[1] and sum(sets[0].values()) == 2
    result = cli(
        "math", expression, "--latents", str(encoded), "--models", str(tiny_export), "--match-by", "judge",
        "--out", str(tmp_path / "n"),
    )  # fmt: skip
    assert result.code == 2 and "--match-by" in result.stderr and not (tmp_path / "n").exists()
