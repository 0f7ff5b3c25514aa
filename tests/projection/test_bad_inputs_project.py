"""The error contract under a corpus of bad inputs (docs/errors.md).

Every case is a tiny file or option built here. For each: the exit code, exactly one `error:` line, no traceback,
and nothing created or changed under the output's folder. Most cases call the real entry point (`main`) in this
process, so TensorFlow is imported once; the contract's process-level parts (--debug, FACEMATH_DEBUG, kill -9) run
`facemath` in a subprocess.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facemath_core.latent.latents import Latents, save_latents

from ..conftest import run_cli

# --- running the CLI ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def cli(*args, env: dict | None = None) -> Result:
    """`facemath ARGS` through the real error boundary, in this process."""
    from facemath_core import cli as cli_module

    cli_module.state["debug"] = False
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level  # main() quiets TensorFlow's logger; other tests in this process may read it
    out, err = io.StringIO(), io.StringIO()
    argv = ["facemath", *map(str, args)]
    with mock.patch.object(sys, "argv", argv), mock.patch.dict(os.environ, env or {}):
        with redirect_stdout(out), redirect_stderr(err):
            try:
                cli_module.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                tf_logger.setLevel(level)
    return Result(code, out.getvalue(), err.getvalue())


def snapshot(folder: Path) -> dict:
    """Everything under a folder (hidden files included) with size and modification time."""
    if not folder.exists():
        return {}
    entries = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()  # links themselves: a link loop is part of the corpus
        entries[str(path.relative_to(folder))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


def assert_one_error(result: Result, code: int = 1, *fragments: str, after_work: bool = False) -> str:
    """Exit code, one `error:` line and no traceback; unless the failure comes `after_work` (a progress bar
    already drawn), nothing else on stderr either."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    others = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert after_work or others == errors, result.stderr  # no stray warnings or progress around the error
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def fails_cleanly(workspace: Path, args: list, code: int = 1, *fragments: str) -> str:
    """Run a command that must fail and check that nothing under `workspace` was created or changed."""
    before = snapshot(workspace)
    line = assert_one_error(cli(*args), code, *fragments)
    assert snapshot(workspace) == before, line
    return line


# --- the corpus's ingredients --------------------------------------------------------------------------------


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but that holds no pixel data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def good_png(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(size).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


BAD_IMAGES = {
    "empty.png": (b"", "empty file"),
    "truncated.png": (good_png()[:200], "truncated"),
    "text.png": (b"hello, I am not a picture\n" * 20, "not an image"),
    "bomb.png": (png_with_size(100_000, 100_000), "pixel limit"),
    "header_only.gif": (b"GIF89a" + b"\x00" * 10, "not an image"),
}


@pytest.fixture(scope="module")
def backend(tiny_export):
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="module")
def faces(backend, tmp_path_factory) -> Path:
    """Six faces the tiny generator can make exactly."""
    from facemath_core.data.images import from_unit

    folder = tmp_path_factory.mktemp("bad_faces") / "faces"
    folder.mkdir()
    z = np.random.default_rng(7).uniform(-0.8, 0.8, (6, 8)).astype(np.float32)
    for i, image in enumerate(backend.generate(z)):
        Image.fromarray(from_unit(image)).save(folder / f"face{i}.png")
    return folder


@pytest.fixture(scope="module")
def good_latents(backend, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good_latents") / "latents.npz"
    z = np.random.default_rng(1).uniform(-0.8, 0.8, (4, 8)).astype(np.float32)
    save_latents(path, Latents([f"f{i}.png" for i in range(4)], z, "gan", "generator", 1, "projection"))
    return path


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """A workspace folder, also the current folder (so `--out .` means it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def latents_variants(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Damaged copies of a good latents file: name -> (path, fragment the error must contain)."""
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    raw = good.read_bytes()
    cases: dict[str, tuple[Path, str]] = {}

    def write_bytes(name, payload, fragment):
        path = folder / f"{name}.npz"
        path.write_bytes(payload)
        cases[name] = (path, fragment)

    def write_arrays(name, fragment, allow_pickle=False, **changes):
        path = folder / f"{name}.npz"
        new = {k: v for k, v in {**arrays, **changes}.items() if v is not None}
        np.savez(path, **new)
        cases[name] = (path, fragment)

    write_bytes("truncated", raw[: len(raw) // 2], "truncated or corrupt")
    write_bytes("garbage", os.urandom(300), "not a latents file")
    write_bytes("empty", b"", "not a latents file")
    write_bytes("text", b'{"z": [1, 2, 3]}\n', "not a latents file")
    buffer = io.BytesIO()
    np.save(buffer, arrays["z"])
    write_bytes("npy_named_npz", buffer.getvalue(), "a single .npy array")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "just a zip")
    write_bytes("plain_zip", zipped.getvalue(), "latents file")
    flipped = bytearray(raw)
    member = zipfile.ZipFile(good).getinfo("z.npy")
    name_length, extra_length = struct.unpack("<HH", raw[member.header_offset + 26 : member.header_offset + 30])
    data_start = member.header_offset + 30 + name_length + extra_length
    flipped[data_start + member.file_size - 3] ^= 0xFF  # one flipped bit pattern inside z's numbers
    write_bytes("one_bad_byte", bytes(flipped), "fails its checksum")
    write_arrays("pickled_names", "pickled Python objects", names=np.array(["a", 1, None, 2.0], dtype=object))
    write_arrays("pickled_config", "pickled Python objects", config=np.array({"a": 1}, dtype=object))
    write_arrays("bad_json", "field 'config' is not valid JSON", config=np.array("{not json"))
    write_arrays("json_list", "should be a JSON object", config=np.array("[1, 2]"))
    write_arrays("models_wrong_types", "field 'models'", models=np.array('{"generator": "one"}'))
    write_arrays("row_mismatch", "4 names but 3 rows", z=arrays["z"][:3])
    write_arrays("nan_z", "NaN or infinite", z=np.where(np.arange(8) == 2, np.nan, arrays["z"]).astype(np.float32))
    write_arrays("inf_z", "NaN or infinite", z=np.full((4, 8), np.inf, np.float32))
    write_arrays("z_1d", "2-d array of numbers", z=arrays["z"].ravel())
    write_arrays("z_text", "2-d array of numbers", z=np.array([["a"] * 8] * 4))
    write_arrays("names_numbers", "list of text", names=np.arange(4))
    write_arrays("family_numbers", "field 'family'", family=np.arange(3))
    write_arrays("version_float", "model_version", model_version=np.array(1.5))
    write_arrays("failed_shape", "field 'failed'", failed=np.zeros(7, bool))
    write_arrays("loss_shape", "loss_total", loss_total=np.zeros(2, np.float32))
    write_arrays("missing_z", "missing z", z=None)
    (folder / "folder.npz").mkdir()
    cases["folder"] = (folder / "folder.npz", "is a folder")
    cases["missing"] = (folder / "nothing-here.npz", "no such latents file")
    return cases


# --- images ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_are_named_in_one_line(ws, name):
    payload, fragment = BAD_IMAGES[name]
    folder = ws / "faces"
    folder.mkdir()
    (folder / "good.png").write_bytes(good_png())
    (folder / name).write_bytes(payload)
    line = fails_cleanly(ws, ["data", "info", folder], 1, "1 of 2 images could not be read", name, fragment)
    assert "good.png" not in line


def test_a_folder_named_like_an_image_and_a_link_loop(ws):
    folder = ws / "faces"
    folder.mkdir()
    (folder / "sub.png").mkdir()
    (folder / "loop.png").symlink_to(folder / "loop.png")
    fails_cleanly(ws, ["data", "info", folder], 1, "2 of 2 images", "sub.png", "loop.png")
    fails_cleanly(ws, ["data", "info", ws / "missing"], 1, "no such folder")


def test_odd_image_modes_are_read_not_refused(ws):
    """Not bad inputs: 16-bit, 1-bit, palette with transparency, CMYK, grey+alpha and animated files decode."""
    folder = ws / "faces"
    folder.mkdir()
    gradient = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(gradient).save(folder / "grey16.png")
    Image.new("1", (32, 32), 1).save(folder / "bits.png")
    palette = Image.new("P", (32, 32), 0)
    palette.info["transparency"] = 0
    palette.save(folder / "palette.png", transparency=0)
    Image.new("CMYK", (32, 32), (0, 255, 0, 0)).save(folder / "cmyk.jpg")
    Image.new("LA", (32, 32), (10, 128)).save(folder / "la.png")
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    result = cli("data", "info", folder)
    assert result.code == 0 and "all 6 images decode" in result.stdout, result.stderr

    from facemath_core.data.images import read_image

    assert read_image(folder / "grey16.png")[31, 31].tolist() == [255, 255, 255]  # 65535 is white, not clipped
    assert read_image(folder / "cmyk.jpg").shape == (32, 32, 3)
    assert read_image(folder / "palette.png")[0, 0].tolist() == [255, 255, 255]  # transparent shows as white


def test_bad_images_in_a_projection(ws, tiny_export):
    folder = ws / "faces"
    folder.mkdir()
    (folder / "good.png").write_bytes(good_png())
    for name, (payload, _) in BAD_IMAGES.items():
        (folder / name).write_bytes(payload)
    line = fails_cleanly(ws, ["project", folder, "--models", tiny_export, "--steps", "1", "--out", ws / "out"])
    assert f"{len(BAD_IMAGES)} of {len(BAD_IMAGES) + 1} images could not be read" in line
    empty = ws / "empty"
    empty.mkdir()
    fails_cleanly(ws, ["project", empty, "--models", tiny_export, "--out", ws / "out"], 1, "folder has no images")


# --- latents files -----------------------------------------------------------------------------------------------


def test_damaged_latents_files_are_one_line_errors(ws, good_latents, tiny_export):
    bad = ws / "bad"
    bad.mkdir()
    cases = latents_variants(good_latents, bad)
    assert len(cases) >= 25
    for name, (path, fragment) in cases.items():
        line = fails_cleanly(ws, ["render", path, "--models", tiny_export, "--out", ws / "r"], 1, fragment)
        assert str(path) in line, (name, line)
    # The same files where other commands read latents.
    for name in ("truncated", "pickled_names", "nan_z", "row_mismatch"):
        path, fragment = cases[name]
        fails_cleanly(ws, ["math", "f0", "--latents", path, "--models", tiny_export, "--out", ws / "m"], 1, fragment)
        fails_cleanly(
            ws,
            ["interpolate", "f0", "f1", "--latents", path, "--models", tiny_export, "--out", ws / "i.png"],
            1,
            fragment,
        )
    # The good file still works: the checks refuse damage, not valid files.
    assert cli("render", good_latents, "--models", tiny_export, "--out", ws / "r").code == 0


# --- resume files ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(faces, tiny_export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    result = cli("project", faces, "--models", tiny_export, "--steps", "3", "--out", out, "--batch-size", "4")
    assert result.code == 0, result.stderr
    return out


def resume_variants(good: Path) -> dict[str, tuple[dict | bytes, str]]:
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["config"]))
    raw = good.read_bytes()
    return {
        "truncated": (raw[: len(raw) // 3], "truncated or corrupt"),
        "garbage": (os.urandom(500), "not a resume file"),
        "pickled": ({**arrays, "paths": np.array([Path("x")] * 6, dtype=object)}, "pickled Python objects"),
        "bad_json": ({**arrays, "config": np.array("{")}, "not valid JSON"),
        "config_types": ({**arrays, "config": np.array(json.dumps({**config, "steps": "many"}))}, "--steps many"),
        "config_keys": ({**arrays, "config": np.array('{"steps": 3}')}, "not a projection config"),
        "config_lr": (
            {**arrays, "config": np.array(json.dumps({**config, "optimizer_params": {"lr": -1}}))},
            "--lr -1",
        ),
        "names_paths": ({**arrays, "paths": arrays["paths"][:2]}, "6 names but 2 image paths"),
        "state_shape": ({**arrays, "c0.best_z": np.zeros((3, 8), np.float32)}, "batch 1 state 'best_z'"),
        "state_missing": ({k: v for k, v in arrays.items() if k != "c1.variable"}, "batch 2 state 'variable'"),
        "state_nan": ({**arrays, "c1.best_z": np.full((2, 8), np.nan, np.float32)}, "NaN or infinite"),
    }


def test_damaged_resume_files_are_one_line_errors(ws, finished_run, tiny_export):
    variants = resume_variants(finished_run / "resume.npz")
    for name, (content, fragment) in variants.items():
        partial = ws / "job.partial"
        partial.mkdir(exist_ok=True)
        if isinstance(content, bytes):
            (partial / "resume.npz").write_bytes(content)
        else:
            np.savez(partial / "resume.npz", **content)
        line = fails_cleanly(ws, ["project", "--resume", ws / "job", "--models", tiny_export], 1, fragment)
        assert "resume.npz" in line or "--steps" in line, (name, line)


# --- expressions -------------------------------------------------------------------------------------------------


EXPRESSIONS = [
    ("(" * 150 + "f0" + ")" * 150, 2, "column 101: nested more than 100 levels"),
    ("f0 + " + "-" * 150 + "f1", 2, "column 106: nested more than 100 levels"),
    ("mean(" * 120 + "f0" + ")" * 120, 2, "nested more than 100 levels"),
    ("", 2, "empty"),
    ("f0 +", 2, "column 5"),
    ("f0 $ f1", 2, "unexpected character"),
    ("'f0", 2, "unclosed quote"),
    ("f0 / 0", 2, "division by zero"),
    ("f0 * f1", 2, "cannot multiply two latents"),
    ("nobody + f0", 2, "unknown latent"),
    ("f0 + 1", 2, "cannot add a number and a latent"),
    ("1e999999 * f0", 2, None),  # an infinite scale: refused, not rendered as noise
]


@pytest.mark.parametrize("expression, code, fragment", EXPRESSIONS)
def test_bad_expressions(ws, good_latents, tiny_export, expression, code, fragment):
    args = ["math", expression, "--latents", good_latents, "--models", tiny_export, "--out", ws / "m"]
    if expression.startswith("1e999999"):
        fails_cleanly(ws, args, 1, "NaN or infinite")
        return
    fails_cleanly(ws, args, code, *([fragment] if fragment else []))


def test_long_flat_sums_evaluate(ws, good_latents, tiny_export):
    """500 names in one sum: no RecursionError, and the mean of 600 copies of f0 and f1 is their midpoint."""
    from facemath_core.latent.latents import load_latents

    expression = "(" + " + ".join(["f0", "f1"] * 300) + ") / 600"
    result = cli("math", expression, "--latents", good_latents, "--models", tiny_export, "--out", ws / "m")
    assert result.code == 0, result.stderr
    z = load_latents(good_latents).z
    np.testing.assert_allclose(load_latents(ws / "m" / "latents.npz").z[0], (z[0] + z[1]) / 2, atol=1e-5)


# --- options ------------------------------------------------------------------------------------------------


PROJECT_OPTIONS = [
    (["--steps", "0"], "--steps 0"),
    (["--steps", "-5"], "--steps -5"),
    (["--lr", "-1"], "--lr -1"),
    (["--lr", "0"], "--lr 0"),
    (["--lr", "inf"], "--lr inf"),
    (["--lr", "nan"], "--lr nan"),
    (["--loss-plugin", "contextual=nan"], "finite number"),
    (["--loss-plugin", "contextual=inf"], "finite number"),
    (["--loss-plugin", "contextual=-1"], "finite number"),
    (["--restarts", "0"], "--restarts 0"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--patience", "0"], "--patience 0"),
    (["--param", "adam.beta_1=1.5"], "adam.beta_1=1.5"),
    (["--param", "adam.lr=nan"], "lr"),
    (["--param", "momentum.momentum=-0.5", "--optimizer", "momentum"], "momentum"),
]


@pytest.mark.parametrize("extra, fragment", PROJECT_OPTIONS, ids=[" ".join(e) for e, _ in PROJECT_OPTIONS])
def test_bad_projection_numbers(ws, faces, tiny_export, extra, fragment):
    fails_cleanly(ws, ["project", faces, "--models", tiny_export, "--out", ws / "out", *extra], 1, fragment)


def test_bad_numbers_elsewhere(ws, faces, good_latents, tiny_export, synth_faces):
    latents = ["--latents", good_latents, "--models", tiny_export]
    for jitter in ("nan", "inf", "-1"):
        fails_cleanly(ws, ["math", "f0", *latents, "--out", ws / "m", "--jitter", jitter], 2, "--jitter")
    fails_cleanly(ws, ["analogy", "f0", "f1", "f2", *latents, "--out", ws / "a.png", "--size", "100000"], 1, "GiB")
    fails_cleanly(ws, ["interpolate", "f0", "f1", *latents, "--out", ws / "i.png", "--frames", "1000000"], 1, "GiB")
    for option in ("--columns", "--size", "--count"):
        fails_cleanly(ws, ["data", "grid", synth_faces, "--out", ws / "g.png", option, "0"], 1, f"{option} 0")
    fails_cleanly(ws, ["data", "grid", synth_faces, "--out", ws / "g.png", "--count", "100000", "--size", "512"], 1)
    for extra, fragment in ((["--count", "0"], "--count 0"), (["--size", "0"], "--size 0")):
        fails_cleanly(ws, ["data", "synth", "--out", ws / "s", *extra], 1, fragment)
    fails_cleanly(ws, ["data", "synth", "--out", ws / "s", "--count", "x"], 2, "--count")
    fails_cleanly(ws, ["project", faces, "--no-such-option"], 2, "No such option")


# --- outputs -------------------------------------------------------------------------------------------------


def test_unwritable_outputs_fail_before_any_work(ws, faces, good_latents, tiny_export, synth_faces):
    blocker = ws / "a_file"
    blocker.write_text("I am a file\n")
    under = blocker / "sub"
    latents = ["--latents", good_latents, "--models", tiny_export]
    commands = {
        "project": ["project", faces, "--models", tiny_export, "--steps", "2", "--out", under],
        "math": ["math", "f0", *latents, "--out", under],
        "render": ["render", good_latents, "--models", tiny_export, "--out", under],
        "analogy": ["analogy", "f0", "f1", "f2", *latents, "--out", under / "a.png"],
        "interpolate": ["interpolate", "f0", "f1", *latents, "--out", under / "i.png"],
        "encode": ["encode", faces, "--models", tiny_export, "--out", under],
        "synth": ["data", "synth", "--count", "3", "--out", under],
        "grid": ["data", "grid", synth_faces, "--out", under / "g.png"],
    }
    for name, args in commands.items():
        line = fails_cleanly(ws, args, 1, "is a file, not a folder")
        assert str(blocker) in line, (name, line)
    # --out . (the current folder, here the workspace) and its parent are refused, even with --overwrite.
    for out in (".", ".."):
        for args in (
            ["project", faces, "--models", tiny_export, "--steps", "2", "--overwrite", "--out", out],
            ["math", "f0", *latents, "--overwrite", "--out", out],
            ["render", good_latents, "--models", tiny_export, "--overwrite", "--out", out],
            ["data", "synth", "--count", "3", "--overwrite", "--out", out],
        ):
            fails_cleanly(ws, args, 1, "current folder")


def test_read_only_folder(ws, faces, tiny_export):
    folder = ws / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable (covered by the path-under-a-file cases)")
        line = fails_cleanly(ws, ["project", faces, "--models", tiny_export, "--out", folder / "out"])
        assert "permission denied" in line
    finally:
        folder.chmod(0o755)


def test_overwrite_of_a_file_leaves_no_old_copy(ws, faces, tiny_export):
    target = ws / "result"
    target.write_text("a file where the folder goes\n")
    result = cli("project", faces, "--models", tiny_export, "--steps", "2", "--out", target, "--overwrite")
    assert result.code == 0, result.stderr
    assert target.is_dir() and sorted(p.name for p in ws.iterdir()) == ["result"]


# --- the boundary itself ---------------------------------------------------------------------------------------


def test_unexpected_exceptions_are_one_line_with_exit_70_and_debug_shows_the_traceback(ws, faces, tiny_export):
    # Components' functions run behind the plugin guard (exit 1 naming the plugin, tests/host/test_plugins.py); a
    # backend object's methods do not, so a bug in one is an unexpected exception.
    plugin = ws / "broken.py"
    plugin.write_text(
        "from facemath_core import hookimpl\n"
        "from facemath_core.serving.backends.embedded import EmbeddedBackend\n\n"
        "def boom():\n"
        "    raise ZeroDivisionError('plugin bug')\n\n"
        "class Broken(EmbeddedBackend):\n"
        "    def metadata(self, model):\n"
        "        return boom()\n\n"
        "@hookimpl(tryfirst=True)\n"
        "def facemath_open_backend(models, server, options):\n"
        "    return Broken(models)\n"
    )
    args = ["--plugin", plugin, "project", faces, "--models", tiny_export, "--out", ws / "out"]
    before = snapshot(ws)
    result = run_cli(*map(str, args))
    assert result.returncode == 70, result.stderr
    assert result.stderr.strip().splitlines() == [
        "internal error: ZeroDivisionError: plugin bug; rerun with --debug for the traceback"
    ]
    assert snapshot(ws) == before
    for debug in (["--debug", *map(str, args)], list(map(str, args))):
        result = run_cli(*debug, env={"FACEMATH_DEBUG": "1"} if debug[0] != "--debug" else None)
        assert result.returncode == 70 and "Traceback" in result.stderr and "in boom" in result.stderr
    # An expected error with --debug: the traceback, then the same one line.
    result = run_cli("--debug", "data", "info", str(ws / "missing"))
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_warnings_stay_off_the_terminal(ws, faces, tiny_export):
    """A run where some images fail: numpy's RuntimeWarnings must not reach stderr; our warning lines do."""
    plugin = ws / "nan_first.py"
    plugin.write_text(
        "import tensorflow as tf\n"
        "from facemath_core import hookimpl\n"
        "from facemath_core.host.components import LossTerm\n\n"
        "def nan_first(target, generated, mask, disc_logits=None):\n"
        "    per_image = tf.reduce_mean(tf.square(target - generated), axis=[1, 2, 3])\n"
        "    return per_image + tf.where(tf.range(tf.shape(per_image)[0]) == 0, float('nan'), 0.0)\n\n"
        "@hookimpl\n"
        "def facemath_loss_terms():\n"
        "    return [LossTerm('nan-first', 'NaN for the first image.', nan_first)]\n"
    )
    args = ["--plugin", plugin, "project", faces, "--models", tiny_export, "--steps", "3"]
    result = cli(*args, "--loss-plugin", "nan-first=1", "--loss-plugin", "contextual=0", "--out", ws / "part")
    assert result.code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert lines == [line for line in lines if line.startswith("warning: face0.png: the loss became NaN")]
    assert len(lines) == 1 and "RuntimeWarning" not in result.stderr
    assert "1 of 6 failed" in result.stdout
    # Every image failing is an error, and nothing is published.
    result = cli(*args, "--loss-plugin", "contextual=1e38", "--out", ws / "all")
    assert_one_error(result, 1, "every image failed (face0.png: the loss became NaN", after_work=True)
    assert not (ws / "all").exists() and not (ws / "all.partial").exists()


# --- interrupted projections ---------------------------------------------------------------------------------


def project_args(faces, models, out, steps):
    return [
        "project",
        str(faces),
        "--models",
        str(models),
        "--steps",
        str(steps),
        "--patience",
        "100000",
        "--out",
        str(out),
    ]


def _interactive_signals():
    """In the child: Ctrl-C and SIGTERM as a terminal delivers them. A non-interactive shell starts background
    jobs (`pytest ... &`) with SIGINT ignored, the child inherits that, and Python then never raises
    KeyboardInterrupt: the SIGINT test would hang for a reason that is the shell's, not facemath's."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn(args):
    return subprocess.Popen(
        [sys.executable, "-c", "from facemath_core.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=_interactive_signals,
    )


def wait_for(path: Path, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(ws, faces, tiny_export):
    from facemath_core.latent.latents import load_latents

    steps = 700
    straight = run_cli(*project_args(faces, tiny_export, ws / "straight", steps))
    assert straight.returncode == 0, straight.stderr

    out = ws / "killed"
    process = spawn(project_args(faces, tiny_export, out, steps))
    wait_for(out.with_name("killed.partial") / "resume.npz", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = out.with_name("killed.partial")
    assert partial.is_dir() and not out.exists()
    checkpoint = snapshot(partial)

    rerun = run_cli(*project_args(faces, tiny_export, out, steps))
    assert rerun.returncode == 1 and f"--resume {out}" in rerun.stderr and "--overwrite" in rerun.stderr
    assert snapshot(partial) == checkpoint  # the refusal kept the checkpoint

    resumed = run_cli("project", "--resume", str(out), "--models", str(tiny_export))
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_allclose(load_latents(out / "latents.npz").z, load_latents(ws / "straight" / "latents.npz").z)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, steps + 1))
    assert sorted(p.name for p in ws.iterdir()) == ["killed", "straight"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_says_where_the_checkpoint_is(ws, faces, tiny_export, signum):
    out = ws / "job"
    process = spawn(project_args(faces, tiny_export, out, 100000))
    wait_for(out.with_name("job.partial") / "resume.npz", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"continue with --resume {out}" in errors[0] and "job.partial" in errors[0]
    assert (out.with_name("job.partial") / "resume.npz").exists() and "Traceback" not in stderr


# --- fuzzing -----------------------------------------------------------------------------------------------------

NUMBERS = st.sampled_from(["0", "-1", "1", "2", "nan", "inf", "-inf", "1e308", "abc", "", "0.5", "3"])
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def assert_contract(result: Result, out: Path) -> None:
    """Success, or one error line with exit 1/2 and nothing at the output path."""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    if result.code == 0:
        return
    assert result.code in (1, 2), result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1, result.stderr
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["--steps", "--lr", "--restarts", "--batch-size", "--patience", "--seed"]), NUMBERS),
        max_size=3,
    ),
    st.sampled_from([[], ["--loss-plugin", "contextual=nan"], ["--param", "adam.beta_2=2"], ["--init", "x"]]),
)
def test_fuzz_project_options(faces, tiny_export, tmp_path_factory, options, extra):
    out = tmp_path_factory.mktemp("fuzz") / "out"
    flat = [x for pair in options for x in pair]
    if not any(o == "--steps" for o, _ in options):
        flat += ["--steps", "2"]  # every valid --steps in NUMBERS is small too
    assert_contract(cli("project", faces, "--models", tiny_export, "--out", out, *flat, *extra), out)


@FUZZ
@given(
    st.text(alphabet="f0123+-*/()&|~,. 'mean", max_size=40),
    st.sampled_from([[], ["--jitter", "nan"], ["--exemplars", "-1"], ["--seed", "-2"], ["--jitter", "1e308"]]),
)
def test_fuzz_math(good_latents, tiny_export, tmp_path_factory, expression, extra):
    out = tmp_path_factory.mktemp("fuzz") / "m"
    assert_contract(
        cli("math", expression, "--latents", good_latents, "--models", tiny_export, "--out", out, *extra), out
    )


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["--count", "--size", "--seed", "--held-out-percent"]), NUMBERS),
        max_size=3,
    ),
    st.sampled_from([[], ["--freq", "Smiling=nan"], ["--freq", "Smiling=2"], ["--correlate", "Smiling:Male=1"]]),
)
def test_fuzz_synth(tmp_path_factory, options, extra):
    out = tmp_path_factory.mktemp("fuzz") / "s"
    flat = [x for pair in options for x in pair]
    # Keep successful renders small: at most 4 faces of 16..64 pixels.
    flat += ["--count", "4"] if not any(o == "--count" for o, _ in options) else []
    assert_contract(cli("data", "synth", "--out", out, *flat, *extra), out)


def test_resume_cuts_the_history_back_to_the_checkpoint(tmp_path):
    """A killed run logged steps after its last checkpoint (and maybe half a line); resuming must not repeat them."""
    from facemath_core.projection.run import truncate_history

    history = tmp_path / "history.jsonl"
    lines = [json.dumps({"batch": 0, "step": s, "loss": 1.0}) for s in range(1, 151)]
    lines += [json.dumps({"batch": 1, "step": s, "loss": 1.0}) for s in range(1, 31)]
    history.write_text("\n".join(lines) + '\n{"batch": 1, "st')
    truncate_history(history, {"c0.step": np.array(150), "c1.step": np.array(20)}, batches=3)
    kept = [(r["batch"], r["step"]) for r in map(json.loads, history.read_text().splitlines())]
    assert kept == [(0, s) for s in range(1, 151)] + [(1, s) for s in range(1, 21)]
    truncate_history(history, {"c0.step": np.array(100)}, batches=2)
    assert [json.loads(x)["step"] for x in history.read_text().splitlines()] == list(range(1, 101))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl"]


def test_a_plugin_failing_inside_a_run_leaves_no_partial_folder(ws, faces, tiny_export):
    """A loss term that raises is caught when it is checked before the first step (issue 12): one `error:` line
    naming the plugin, exit 1, and nothing is kept (tests/host/test_plugins.py covers a failure inside the run)."""
    plugin = ws / "raising.py"
    plugin.write_text(
        "from facemath_core import hookimpl\n"
        "from facemath_core.host.components import LossTerm\n\n"
        "def raising(target, generated, mask, disc_logits=None):\n"
        "    raise ValueError('loss plugin bug')\n\n"
        "@hookimpl\n"
        "def facemath_loss_terms():\n"
        "    return [LossTerm('raising', 'Raises.', raising)]\n"
    )
    before = snapshot(ws)
    args = ["--plugin", plugin, "project", faces, "--models", tiny_export, "--steps", "3", "--out", ws / "out"]
    result = cli(*args, "--loss-plugin", "raising=1")
    assert result.code == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: loss 'raising' (--plugin {plugin}) failed on a check batch: ValueError: loss plugin bug"]
    assert snapshot(ws) == before
