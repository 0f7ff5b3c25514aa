"""The group language end to end: `facemath math`, `analogy`, `attributes` and `--match`, each with and without
flagged faces, against sets computed here from the label file (test_group_sets.read_label_file, Python set
operations). The groups below use every operator: `&`, `|`, `~`, `~~`, parentheses and nesting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.drawing import line_height
from facemath_core.latent.latents import load_latents, save_latents
from facemath_core.latent.quality import split_rows

from .test_group_sets import read_label_file, with_attribute

pytestmark = pytest.mark.slow  # ten commands on 160 faces with the tiny models


def groups_of(faces: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each group expression and its faces, written out by hand with Python set operations."""
    every = set(faces)
    s, m, e, b, h, p = (
        with_attribute(faces, a) for a in ("Smiling", "Male", "Eyeglasses", "Bangs", "Wearing_Hat", "Pale_Skin")
    )
    return {
        "Smiling & ~Male": s & (every - m),
        "~Smiling & ~Male": (every - s) & (every - m),
        "~(Smiling | Eyeglasses)": every - (s | e),
        "Male | ~Bangs & Eyeglasses": m | ((every - b) & e),
        "~~Smiling & (Male | ~Wearing_Hat)": s & (m | (every - h)),
        "(Bangs | Pale_Skin) & ~(Male & Eyeglasses)": (b | p) & (every - (m & e)),
    }


@pytest.fixture(scope="module")
def world(tiny_export, train_faces, tmp_path_factory):
    """GAN latents of the 160 labelled faces (their attribute file is found next to the images), the same latents
    with every sixth face flagged, the parsed labels and the groups.

    z depends on the labels (a direction per attribute plus noise), so the means of different groups differ, and
    the flagged faces lie far out, as failed projections do: a mean that takes one in moves visibly."""
    from facemath_core.latent.latents import Latents

    folder = tmp_path_factory.mktemp("groups")
    attributes, faces = read_label_file(train_faces / "list_attr_celeba.txt")
    names = sorted(faces)
    rng = np.random.default_rng(0)
    labels = np.array([[a in faces[n] for a in attributes] for n in names], np.float32)
    z = 0.3 * (2 * labels - 1) @ rng.normal(size=(len(attributes), 8)) + 0.1 * rng.normal(size=(len(names), 8))
    flagged = {n for i, n in enumerate(names) if i % 6 == 1}
    is_flagged = np.array([n in flagged for n in names])
    z[is_flagged] += 1.5
    inputs = [str(train_faces / "img_align_celeba" / n) for n in names]
    latents = Latents(names, z.astype(np.float32), "gan", "generator", 1, "projection", config={"inputs": inputs})
    save_latents(folder / "plain.npz", latents)
    latents.flagged = is_flagged
    save_latents(folder / "flagged.npz", latents)
    groups = groups_of(faces)
    for text, members in groups.items():  # every group has flagged faces and unflagged ones: both cases are tested
        assert members & flagged and members - flagged, text
    return {
        "plain": folder / "plain.npz",
        "flagged": folder / "flagged.npz",
        "names": flagged,
        "faces": faces,
        "groups": groups,
    }


def run_math(cli, world, tiny_export, out, expression, *options, latents="plain"):
    result = cli(
        "math", expression, "--latents", str(world[latents]), "--models", str(tiny_export), "--exemplars", "0",
        "--out", str(out), *options,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return json.loads((out / "terms.json").read_text())["terms"], result.stderr


SUM = (
    "mean(Smiling & ~Male) + mean(~Smiling & ~Male) + mean(~(Smiling | Eyeglasses)) + mean(Male | ~Bangs & Eyeglasses)"
    " + mean(~~Smiling & (Male | ~Wearing_Hat)) + mean((Bangs | Pale_Skin) & ~(Male & Eyeglasses))"
)


@pytest.mark.parametrize("latents, options", [("plain", []), ("flagged", []), ("flagged", ["--include-flagged"])])
def test_math_averages_each_group_the_labels_define(cli, world, tiny_export, tmp_path, latents, options):
    terms, stderr = run_math(cli, world, tiny_export, tmp_path / "m", SUM, *options, latents=latents)
    left_out = world["names"] if latents == "flagged" and not options else set()
    assert [t["sign"] for t in terms] == ["+"] * len(world["groups"])  # the terms in the order of the groups
    for term, members in zip(terms, world["groups"].values(), strict=True):
        assert set(term["faces"]) == members - left_out, term["term"]
    skipped = left_out & set().union(*world["groups"].values())
    if skipped:
        assert f"note: skipped {len(skipped)} flagged faces (failed projections: " in stderr
    else:
        assert "flagged" not in stderr


def corner_tiles(path, size: int = 32):
    """The lower halves of the A (top left) and B (top right) tiles of a J-diagram, shrunk back to `size` pixels
    (faces are drawn at 4x; the upper left of a corner tile holds its letter)."""
    grid = np.asarray(Image.open(path).convert("RGB")).astype(int)
    tile, top = 4 * size, line_height() + 2
    a = grid[top + tile // 2 : top + tile : 4, 2 : 2 + tile : 4]
    b = grid[top + tile // 2 : top + tile : 4, -tile - 2 : -2 : 4]
    return a, b


@pytest.mark.parametrize("latents", ["plain", "flagged"])
def test_analogy_corners_are_the_means_of_the_groups(cli, world, tiny_export, tmp_path, latents):
    from facemath_core.data.images import from_unit
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    a, b = "~Smiling & ~Male", "(Bangs | Pale_Skin) & ~(Male & Eyeglasses)"
    out = tmp_path / "j.png"
    result = cli(
        "analogy", f"mean({a})", f"mean({b})", "mean(Smiling & ~Male)", "--latents", str(world[latents]),
        "--exemplars", "0", "--size", "2", "--models", str(tiny_export), "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    z = load_latents(world["plain"])
    left_out = world["names"] if latents == "flagged" else set()
    backend = EmbeddedBackend(tiny_export)

    def render(members):
        mean = z.z[sorted(z.names.index(n) for n in members)].mean(0)
        return from_unit(backend.generate(mean[None], "generator"))[0][16:].astype(int)

    tiles = corner_tiles(out)
    for tile, text in zip(tiles, (a, b), strict=True):
        assert np.abs(tile - render(world["groups"][text] - left_out)).max() <= 1, text
    if left_out:
        # What flags applied before ~ gave for A: (~Smiling | flagged) & (~Male | flagged), every flagged face
        # in; the picture tells the two apart.
        assert np.abs(tiles[0] - render(world["groups"][a] | world["names"])).max() > 1


@pytest.mark.parametrize("latents, options", [("flagged", []), ("flagged", ["--include-flagged"]), ("plain", [])])
def test_attributes_fit_on_the_faces_with_and_without_each_attribute(
    cli, world, tiny_export, tmp_path, latents, options
):
    """--raw vectors are the difference of means of the fitted faces with and without the attribute: checked with
    the sets of the label file, the flagged faces left out unless --include-flagged."""
    out = tmp_path / "a"
    result = cli(
        "attributes", "--latents", str(world[latents]), "--raw", "--held-out", "0.3", "--seed", "0",
        "--models", str(tiny_export), "--out", str(out), *options,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    z = load_latents(world["plain"])
    left_out = world["names"] if latents == "flagged" and not options else set()
    kept = [n for n in z.names if n not in left_out]
    assert f"{len(kept)} faces: " in result.stdout
    fit, test = split_rows(len(kept), 0.3, 0)  # the documented split, over the faces attributes keeps
    fitted, held = {kept[i] for i in fit}, {kept[i] for i in test}
    summary = json.loads((out / "attributes.json").read_text())
    with np.load(out / "vectors.npz") as saved:
        names, vectors = list(saved["attribute_names"]), saved["vectors"]

    def mean(members):
        return z.z[[z.names.index(n) for n in sorted(members)]].mean(0)

    assert len(summary["scores"]) == len(names)  # every attribute varies among the fitted faces
    for score in summary["scores"]:
        attribute = score["attribute"]
        having = with_attribute(world["faces"], attribute)
        assert score["positives"] == len(held & having) and score["negatives"] == len(held - having)
        expected = mean(fitted & having) - mean(fitted - having)
        np.testing.assert_allclose(vectors[names.index(attribute)], expected, atol=1e-5)
    if left_out:
        assert f"note: skipped {len(left_out)} flagged faces" in result.stderr


@pytest.mark.parametrize("latents", ["plain", "flagged"])
def test_matched_sets_come_from_the_groups_without_their_flagged_faces(cli, world, tiny_export, tmp_path, latents):
    texts = ["Smiling & ~Male", "~(Smiling | Eyeglasses)", "~~Smiling & (Male | ~Wearing_Hat)"]
    expression = f"mean({texts[0]}) - mean({texts[1]}) + mean({texts[2]})"
    terms, stderr = run_math(
        cli, world, tiny_export, tmp_path / "m", expression, "--match-on", "Bangs,Pale_Skin", latents=latents
    )
    left_out = world["names"] if latents == "flagged" else set()
    faces = world["faces"]

    def stratum(name):
        return ("Bangs" in faces[name], "Pale_Skin" in faces[name])

    groups = [world["groups"][t] - left_out for t in texts]
    for term, members in zip(terms, groups, strict=True):
        assert set(term["faces"]) <= members and not set(term["faces"]) & left_out, term["term"]
    counts = [sorted(stratum(n) for n in term["faces"]) for term in terms]
    assert counts[0] == counts[1] == counts[2]  # matched set by set
    # --exemplars 0 takes every matched set: per stratum, the smallest group's count.
    for value in {stratum(n) for n in faces}:
        assert counts[0].count(value) == min(sum(stratum(n) == value for n in g) for g in groups)
    assert f"matched {len(terms[0]['faces'])} sets of faces" in stderr
