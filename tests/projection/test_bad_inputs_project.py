"""The error contract of `facemath project` and `complete` under a corpus of bad inputs (docs/errors.md): bad
images in a projection, damaged resume files, bad numbers, unwritable outputs, interrupted and killed runs.

Every case is a tiny file or option built here. For each: the exit code, exactly one `error:` line, no traceback,
and nothing created or changed under the output's folder. Most cases run the real entry point in this process (the
`cli` fixture); a run interrupted by a signal or killed needs a real process (support.facemath_process).
The corpus of the other command families: tests/data, tests/latent, tests/host and tests/cli (test_bad_inputs_*).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from ..support import BAD_IMAGES, facemath_process, fails_cleanly, good_png, snapshot

# --- images ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_images_in_a_projection(cli, ws, tiny_export):
    folder = ws / "faces"
    folder.mkdir()
    (folder / "good.png").write_bytes(good_png())
    for name, (payload, _) in BAD_IMAGES.items():
        (folder / name).write_bytes(payload)
    line = fails_cleanly(cli, ws, ["project", folder, "--models", tiny_export, "--steps", "1", "--out", ws / "out"])
    assert f"{len(BAD_IMAGES)} of {len(BAD_IMAGES) + 1} images could not be read" in line
    empty = ws / "empty"
    empty.mkdir()
    fails_cleanly(cli, ws, ["project", empty, "--models", tiny_export, "--out", ws / "out"], 1, "folder has no images")


# --- resume files ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(cli, generated_faces, tiny_export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    result = cli("project", generated_faces, "--models", tiny_export, "--steps", "3", "--out", out, "--batch-size", "4")
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


@pytest.mark.slow
def test_damaged_resume_files_are_one_line_errors(cli, ws, finished_run, tiny_export):
    variants = resume_variants(finished_run / "resume.npz")
    for name, (content, fragment) in variants.items():
        partial = ws / "job.partial"
        partial.mkdir(exist_ok=True)
        if isinstance(content, bytes):
            (partial / "resume.npz").write_bytes(content)
        else:
            np.savez(partial / "resume.npz", **content)
        line = fails_cleanly(cli, ws, ["project", "--resume", ws / "job", "--models", tiny_export], 1, fragment)
        assert "resume.npz" in line or "--steps" in line, (name, line)


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
def test_bad_projection_numbers(cli, ws, generated_faces, tiny_export, extra, fragment):
    fails_cleanly(
        cli, ws, ["project", generated_faces, "--models", tiny_export, "--out", ws / "out", *extra], 1, fragment
    )


# --- outputs -------------------------------------------------------------------------------------------------


def test_read_only_folder(cli, ws, generated_faces, tiny_export):
    folder = ws / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a read-only folder is writable (covered by the path-under-a-file cases)")
        line = fails_cleanly(cli, ws, ["project", generated_faces, "--models", tiny_export, "--out", folder / "out"])
        assert "permission denied" in line
    finally:
        folder.chmod(0o755)


@pytest.mark.slow
def test_overwrite_of_a_file_leaves_no_old_copy(cli, ws, generated_faces, tiny_export):
    target = ws / "result"
    target.write_text("a file where the folder goes\n")
    result = cli("project", generated_faces, "--models", tiny_export, "--steps", "2", "--out", target, "--overwrite")
    assert result.code == 0, result.stderr
    assert target.is_dir() and sorted(p.name for p in ws.iterdir()) == ["result"]


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


def wait_for(path: Path, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(cli, ws, generated_faces, tiny_export):
    from facemath_core.latent.latents import load_latents

    steps = 700
    straight = cli(*project_args(generated_faces, tiny_export, ws / "straight", steps))
    assert straight.code == 0, straight.stderr

    out = ws / "killed"
    process = facemath_process(*project_args(generated_faces, tiny_export, out, steps))
    wait_for(out.with_name("killed.partial") / "resume.npz", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = out.with_name("killed.partial")
    assert partial.is_dir() and not out.exists()
    checkpoint = snapshot(partial)

    rerun = cli(*project_args(generated_faces, tiny_export, out, steps))
    assert rerun.code == 1 and f"--resume {out}" in rerun.stderr and "--overwrite" in rerun.stderr
    assert snapshot(partial) == checkpoint  # the refusal kept the checkpoint

    resumed = cli("project", "--resume", out, "--models", tiny_export)
    assert resumed.code == 0, resumed.stderr
    np.testing.assert_allclose(load_latents(out / "latents.npz").z, load_latents(ws / "straight" / "latents.npz").z)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, steps + 1))
    assert sorted(p.name for p in ws.iterdir()) == ["killed", "straight"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_says_where_the_checkpoint_is(ws, generated_faces, tiny_export, signum):
    out = ws / "job"
    process = facemath_process(*project_args(generated_faces, tiny_export, out, 100000))
    wait_for(out.with_name("job.partial") / "resume.npz", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"continue with --resume {out}" in errors[0] and "job.partial" in errors[0]
    assert (out.with_name("job.partial") / "resume.npz").exists() and "Traceback" not in stderr


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


# --- what --overwrite may replace, odd file names, bulk shards (issue 30) ---------------------------------------


def test_overwrite_never_deletes_the_images_being_projected(cli, ws, generated_faces, tiny_export):
    """Data loss: `project --out DIR --overwrite` where DIR holds the input images deleted them (exit 0)."""
    import shutil

    faces = Path(shutil.copytree(generated_faces, ws / "photos" / "faces"))
    common = ["--models", tiny_export, "--steps", "1", "--overwrite"]
    for images, out, fragment in (
        ([faces], faces, "is the input"),
        ([faces], ws / "photos", "holds the input"),
        ([faces / "face0.png", faces / "face1.png"], faces, "holds the input"),
        ([faces], faces / "projections", "lies inside the input folder"),
    ):
        fails_cleanly(cli, ws, ["project", *images, *common, "--out", out], 1, f"--out {out}", fragment)
    assert sorted(p.name for p in faces.iterdir()) == [f"face{i}.png" for i in range(6)]


@pytest.mark.slow
def test_odd_file_names_are_projected_and_shown_escaped(cli, ws, generated_faces, tiny_export):
    """Exit 70: file names with spaces, newlines, tabs and bytes that are not UTF-8 crashed `project`
    (UnicodeEncodeError in the per-image seed, the contact sheet and the summary). They project like any name, the
    outputs carry the same bytes, and no message holds a raw newline or an unprintable surrogate."""
    import hashlib

    from facemath_core.base.seeds import stable_hash
    from facemath_core.latent.latents import load_latents

    odd = [b"with space.png", b"new\nline.png", b"tab\there.png", b"bad\xff\xfe.png"]
    folder = ws / "odd"
    folder.mkdir()
    for i, name in enumerate(odd):
        (folder / os.fsdecode(name)).write_bytes((generated_faces / f"face{i}.png").read_bytes())
    result = cli("project", folder, "--models", tiny_export, "--steps", "3", "--out", ws / "out", "--no-resize")
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr and "\\udc" not in result.stderr + result.stdout
    latents = load_latents(ws / "out" / "latents.npz")
    assert sorted(os.fsencode(n) for n in latents.names) == sorted(odd)
    assert sorted(os.fsencode(p.name) for p in (ws / "out" / "reconstructions").iterdir()) == sorted(odd)
    # A name that is not UTF-8 seeds by its bytes (two names that differ only there differ in seed); a UTF-8 name
    # seeds exactly as before: SHA-256 of the parts joined by \x1f, computed here by hand.
    assert stable_hash(0, "bad\udcff.png") != stable_hash(0, "bad\udcfe.png")
    assert stable_hash(0, "face0.png") == int.from_bytes(hashlib.sha256(b"0\x1fface0.png").digest()[:8], "little")


def test_a_shard_count_beyond_any_cluster_is_refused(cli, ws, generated_faces, tiny_export):
    """Resource: `--shard 1/1000000000000` was accepted, and merging its shard listed every missing one until
    memory ran out."""
    args = ["project", generated_faces, "--models", tiny_export, "--steps", "1", "--out", ws / "out"]
    fails_cleanly(cli, ws, [*args, "--shard", f"1/{10**12}"], 2, "--shard", "N must be at most 100,000")
    fails_cleanly(cli, ws, [*args, "--shard", "1/1e12"], 2, "is not K/N")
