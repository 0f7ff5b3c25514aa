"""The error contract where it is the same for every command (docs/errors.md): outputs that cannot be written, a
malformed command line (exit 2), the boundary itself (exit 70 for a bug, --debug and FACEMATH_DEBUG show the
traceback) and warnings kept off the terminal. Each command family's own bad inputs: tests/*/test_bad_inputs_*.py;
the fuzzing of the contract: test_bad_inputs_fuzz.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support import assert_one_error, fails_cleanly, run_facemath, snapshot

# --- outputs -------------------------------------------------------------------------------------------------


def test_unwritable_outputs_fail_before_any_work(cli, ws, generated_faces, good_latents, tiny_export, synth_faces):
    blocker = ws / "a_file"
    blocker.write_text("I am a file\n")
    under = blocker / "sub"
    latents = ["--latents", good_latents, "--models", tiny_export]
    commands = {
        "project": ["project", generated_faces, "--models", tiny_export, "--steps", "2", "--out", under],
        "math": ["math", "f0", *latents, "--out", under],
        "render": ["render", good_latents, "--models", tiny_export, "--out", under],
        "analogy": ["analogy", "f0", "f1", "f2", *latents, "--out", under / "a.png"],
        "interpolate": ["interpolate", "f0", "f1", *latents, "--out", under / "i.png"],
        "encode": ["encode", generated_faces, "--models", tiny_export, "--out", under],
        "synth": ["data", "synth", "--count", "3", "--out", under],
        "grid": ["data", "grid", synth_faces, "--out", under / "g.png"],
    }
    for name, args in commands.items():
        line = fails_cleanly(cli, ws, args, 1, "is a file, not a folder")
        assert str(blocker) in line, (name, line)
    # --out . (the current folder, here the workspace) and its parent are refused, even with --overwrite.
    for out in (".", ".."):
        for args in (
            ["project", generated_faces, "--models", tiny_export, "--steps", "2", "--overwrite", "--out", out],
            ["math", "f0", *latents, "--overwrite", "--out", out],
            ["render", good_latents, "--models", tiny_export, "--overwrite", "--out", out],
            ["data", "synth", "--count", "3", "--overwrite", "--out", out],
        ):
            fails_cleanly(cli, ws, args, 1, "current folder")


def test_a_malformed_command_line_is_one_line_with_exit_2(cli, ws, generated_faces):
    fails_cleanly(cli, ws, ["project", generated_faces, "--no-such-option"], 2, "No such option")


# --- the boundary itself ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_unexpected_exceptions_are_one_line_with_exit_70_and_debug_shows_the_traceback(
    ws, generated_faces, tiny_export
):
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
    args = ["--plugin", plugin, "project", generated_faces, "--models", tiny_export, "--out", ws / "out"]
    before = snapshot(ws)
    result = run_facemath(*args)
    assert result.code == 70, result.stderr
    assert result.stderr.strip().splitlines() == [
        "internal error: ZeroDivisionError: plugin bug; rerun with --debug for the traceback"
    ]
    assert snapshot(ws) == before
    for debug in (["--debug", *args], args):
        result = run_facemath(*debug, env={"FACEMATH_DEBUG": "1"} if debug[0] != "--debug" else None)
        assert result.code == 70 and "Traceback" in result.stderr and "in boom" in result.stderr
    # An expected error with --debug: the traceback, then the same one line.
    result = run_facemath("--debug", "data", "info", ws / "missing")
    assert result.code == 1 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.slow
def test_warnings_stay_off_the_terminal(cli, ws, generated_faces, tiny_export):
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
    args = ["--plugin", plugin, "project", generated_faces, "--models", tiny_export, "--steps", "3"]
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


# --- --overwrite never deletes what a command reads (issue 30) ---------------------------------------------------


def test_no_command_replaces_or_writes_into_what_it_reads(cli, ws, good_latents, generated_faces, tiny_export):
    """Data loss: `--overwrite` replaced an --out folder that held the command's own input (project, data pack and
    latents merge deleted their inputs). Every command with --out takes `files.check_apart`: an output that is,
    holds or lies inside an input is refused before any work, --overwrite or not. The family corpora test project,
    data pack, latents merge and train; here the other commands."""
    import shutil

    held = ws / "held"
    held.mkdir()
    latents = Path(shutil.copy(good_latents, held / "latents.npz"))
    faces = Path(shutil.copytree(generated_faces, ws / "faces"))
    models = ["--models", tiny_export]
    cases = {
        "math": (["math", "f0", "--latents", latents, *models, "--out", held], "holds the input"),
        "render": (["render", latents, *models, "--out", held], "holds the input"),
        "attributes": (["attributes", "--latents", latents, *models, "--out", held], "holds the input"),
        "encode": (["encode", faces, *models, "--out", faces], "is the input"),
        "encode-inside": (["encode", faces, *models, "--out", faces / "enc"], "lies inside the input folder"),
        "grid": (["data", "grid", faces, "--out", faces / "face0.png"], "lies inside the input folder"),
        "analogy": (
            ["analogy", "f0", "f1", "f2", "--latents", latents, "--attributes", held, *models, "--out", held / "a.png"],
            "lies inside the input folder",
        ),
        "compare-holds": (["compare", "--data", faces, *models, "--out", faces], "is the input"),
    }
    for name, (args, fragment) in cases.items():
        line = fails_cleanly(cli, ws, [*args, "--overwrite"], 1, fragment)
        assert name and "--out" in line
    assert sorted(p.name for p in faces.iterdir()) == [f"face{i}.png" for i in range(6)]
    assert (held / "latents.npz").read_bytes() == good_latents.read_bytes()
