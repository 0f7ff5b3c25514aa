"""The command line as a user meets it: help, version, one-line errors, atomic outputs."""

import json

import numpy as np
import pytest
from PIL import Image

from facemath_core import __version__


def assert_one_line_error(result, *fragments, code=1):
    assert result.code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_version_and_help(cli):
    assert cli("--version").stdout.strip() == f"facemath {__version__}"
    for args in (["-h"], ["data", "-h"], ["data", "synth", "-h"], ["train", "-h"], ["plugins", "-h"]):
        result = cli(*args)
        assert result.code == 0 and "Usage" in result.stdout, (args, result.stderr)


def test_synth_writes_a_celeba_folder_and_refuses_to_overwrite(cli, tmp_path):
    out = tmp_path / "faces"
    result = cli("data", "synth", "--count", "12", "--out", str(out), "--size", "32", "--seed", "4")
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "img_align_celeba",
        "list_attr_celeba.txt",
        "list_eval_partition.txt",
        "list_factors_synth.txt",
        "synth_recipe.json",  # the command's parameters, which model cards cite (data/folders.py RECIPE_FILE)
    ]
    assert json.loads((out / "synth_recipe.json").read_text())["count"] == 12
    first = (out / "img_align_celeba" / "000001.png").read_bytes()
    assert_one_line_error(cli("data", "synth", "--count", "3", "--out", str(out)), str(out), "--overwrite")
    # Same seed, same faces.
    again = tmp_path / "again"
    cli("data", "synth", "--count", "12", "--out", str(again), "--size", "32", "--seed", "4")
    assert (again / "img_align_celeba" / "000001.png").read_bytes() == first
    # Nothing half-written is left beside the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "faces"]


def test_bad_synth_options_are_one_line_errors(cli, tmp_path):
    out = str(tmp_path / "x")
    assert_one_line_error(
        cli("data", "synth", "--count", "3", "--out", out, "--freq", "Smilin=0.2"),
        "--freq 'Smilin=0.2'",
        "unknown attribute",
    )
    assert_one_line_error(cli("data", "synth", "--count", "0", "--out", out), "--count 0")
    assert not (tmp_path / "x").exists()


def test_info_and_grid(cli, synth_faces, tmp_path):
    result = cli("data", "info", str(synth_faces))
    assert result.code == 0, result.stderr
    assert "48 images (44 train, 4 held-out)" in result.stdout and "Eyeglasses" in result.stdout
    grid = tmp_path / "grid.png"
    assert cli("data", "grid", str(synth_faces), "--out", str(grid), "--count", "16", "--size", "32").code == 0
    picture = np.asarray(Image.open(grid).convert("RGB"))
    assert picture.shape == (2 * 34 + 2, 8 * 34 + 2, 3)  # 16 faces of 32 px, 8 to a row, 2 px apart
    files = sorted((synth_faces / "img_align_celeba").glob("*.png"))[:16]  # 32 px already: drawn as they are
    for i, path in enumerate(files):
        top, left = 2 + 34 * (i // 8), 2 + 34 * (i % 8)
        face = np.asarray(Image.open(path).convert("RGB"))
        np.testing.assert_array_equal(picture[top : top + 32, left : left + 32], face, path.name)
    assert (picture[:2] == 255).all() and (picture[34:36] == 255).all()  # white above and between the rows


def test_info_reports_every_bad_image(cli, tmp_path):
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"ok{i}.png")
    (tmp_path / "bad1.png").write_bytes(b"")
    (tmp_path / "bad2.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert_one_line_error(
        cli("data", "info", str(tmp_path)), "2 of 5 images could not be read", "bad1.png: empty file", "bad2.jpg"
    )


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--image-size", "48"], ["--image-size 48", "32, 64, 128"]),
        (["--z-dist", "cauchy"], ["--z-dist 'cauchy'"]),
    ],
)
def test_train_bad_architecture(cli, synth_faces, tmp_path, args, fragments):
    result = cli("train", "gan", "--data", str(synth_faces), "--out", str(tmp_path / "run"), *args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_train_needs_enough_images(cli, tmp_path):
    faces = tmp_path / "faces"  # --out beside the data: a run inside the folder it reads is refused
    faces.mkdir()
    for i in range(5):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(faces / f"{i}.png")
    result = cli("train", "vae", "--data", str(faces), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "images in the train split; need at least 8")


def test_resume_needs_a_run(cli, tmp_path):
    assert_one_line_error(cli("train", "gan", "--resume", str(tmp_path)), "not a training run")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_damaged_run_record_is_one_line(cli, tmp_path, text):
    """--resume and --warm-start read run.json through one reader: truncated JSON and a non-object are each one
    error line naming the file."""
    (tmp_path / "run.json").write_text(text)
    assert_one_line_error(cli("train", "gan", "--resume", str(tmp_path)), "run.json: unreadable run record")
