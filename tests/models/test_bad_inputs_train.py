"""The error contract of `facemath train` and `facemath export` (docs/errors.md, docs/training.md): damaged run
records and checkpoints, run folders that are not runs or are another kind's, a run killed before its first
checkpoint, TF_CONFIG and a multi-worker peer that never comes, export versions TF Serving cannot read, a signal or
a full disk during an export. Each case: the exit code, one `error:` line, no traceback, nothing created or changed
(support.fails_cleanly); a signal, a kill or a hang needs a real process (support.facemath_process, run_facemath).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..support import TINY, assert_one_error, facemath_process, fails_cleanly, run_facemath, snapshot

TINY_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
QUICK = ["--batch-size", "16", "--sample-every", "100", *TINY_ARGS]


def _copy_run(run: Path, ws: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run, ws / name))


def _files(folder: Path) -> dict:
    """The files under a folder with size and modification time: what `snapshot` compares, less the folders' own
    times (a refusal that comes after the run folder's lock was taken has created and removed its lock file)."""
    return {k: v for k, v in snapshot(folder).items() if not (folder / k).is_dir() or (folder / k).is_symlink()}


def _fails_leaving_files(cli, ws: Path, args: list, *fragments: str) -> str:
    before = _files(ws)
    line = assert_one_error(cli(*args), 1, *fragments)
    assert _files(ws) == before, line
    return line


# --- damaged run records and checkpoints (exit 70 before) ---------------------------------------------------------


def test_damaged_run_records_are_one_line_for_export_and_resume(cli, ws, tiny_runs):
    """Exit 70: run.json `{}`, without `arch`, with an unknown option, options given as a list, an architecture
    that cannot be built. Export and --resume read the record the same way (runs.read_run)."""
    good = json.loads((tiny_runs["oracle"] / "run.json").read_text())
    variants = {
        "empty": ({}, "no 'kind'"),
        "no_arch": ({k: v for k, v in good.items() if k != "arch"}, "no 'arch'"),
        "unknown_option": ({**good, "options": {**good["options"], "colour": "red"}}, "unknown option 'colour'"),
        "options_list": ({**good, "options": list(good["options"])}, "'options' must be a JSON object, not a list"),
        "steps_text": ({**good, "options": {**good["options"], "steps": "20"}}, "option 'steps' is \"20\""),
        "arch_size": ({**good, "arch": {**good["arch"], "image_size": 7}}, "the DCGAN architecture makes 32, 64"),
        "arch_type": ({**good, "arch": {**good["arch"], "z_dim": "eight"}}, "'arch' {"),
        "placement": ({**good, "placement": [1]}, "'placement' must be a JSON object"),
    }
    run = _copy_run(tiny_runs["oracle"], ws)
    for name, (record, fragment) in variants.items():
        (run / "run.json").write_text(json.dumps(record))
        for args in (["export", run, "--to", ws / "exported"], ["train", "oracle", "--resume", run]):
            line = fails_cleanly(cli, ws, args, 1, f"{run / 'run.json'}: damaged run record", fragment)
            assert name and "internal error" not in line


def test_damaged_checkpoints_are_one_line_and_say_what_to_do(cli, ws, tiny_runs):
    """Exit 70: a newest checkpoint whose data fails its checksum, and `.index` files of garbage. The line names
    the checkpoint and the older one to go back to; deleting the damaged one as it says lets the run go on."""
    run = _copy_run(tiny_runs["oracle"], ws)  # checkpoints at steps 10 and 20
    newest = run / "checkpoints" / "ckpt-20.data-00000-of-00001"
    data = bytearray(newest.read_bytes())
    for i in range(64, len(data), 509):
        data[i] ^= 0xFF
    newest.write_bytes(bytes(data))
    ckpt = run / "checkpoints" / "ckpt-20"
    for args in (["export", run, "--to", ws / "exported"], ["train", "oracle", "--resume", run]):
        _fails_leaving_files(
            cli, ws, args, f"{ckpt}: the checkpoint is damaged", "Checksum does not match", "go back to ckpt-10"
        )
    for index in (run / "checkpoints").glob("*.index"):
        index.write_bytes(os.urandom(300))
    for args in (["export", run, "--to", ws / "exported"], ["train", "oracle", "--resume", run]):
        _fails_leaving_files(cli, ws, args, f"{ckpt}: the checkpoint is damaged", "delete ckpt-20.index")
    # As the line says: without ckpt-20 the run goes back to ckpt-10 (an intact copy of it here).
    shutil.rmtree(run)
    run = _copy_run(tiny_runs["oracle"], ws)
    for path in (run / "checkpoints").glob("ckpt-20.*"):
        path.unlink()
    result = cli("export", run, "--to", ws / "exported")
    assert result.code == 0, result.stderr
    from facemath_core.models.layout import read_metadata

    assert read_metadata(ws / "exported" / "attribute_oracle" / "1")["training"]["checkpoint"] == "ckpt-10"


# --- run folders -----------------------------------------------------------------------------------------------


def test_a_run_of_another_kind_is_not_resumed(cli, ws, tiny_runs):
    """Silent: `train vae --resume RUN` where RUN is a GAN run continued the GAN run without a word."""
    run = _copy_run(tiny_runs["gan"], ws)
    fails_cleanly(
        cli,
        ws,
        ["train", "vae", "--resume", run],
        1,
        f"--resume {run}: a gan run, not a vae run",
        f"facemath train gan --resume {run}",
    )


@pytest.mark.slow  # two CLI trainings of one step (9 s on the 2-core machine)
def test_out_that_is_not_a_run_needs_overwrite(cli, ws, train_faces):
    """Silent: `train --out` into an existing non-empty folder that is not a run wrote into it."""
    out = ws / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("my notes\n")
    args = ["train", "gan", "--data", train_faces, "--out", out, "--steps", "1", *QUICK]
    fails_cleanly(cli, ws, args, 1, f"--out {out}: folder exists, is not empty and holds no training run")
    result = cli(*args, "--overwrite")
    assert result.code == 0, result.stderr
    assert not (out / "todo.txt").exists() and json.loads((out / "run.json").read_text())["steps_done"] == 1
    # A run there now: a new one needs --overwrite (or --resume), and --overwrite with --resume is refused.
    fails_cleanly(cli, ws, args, 1, "a run already exists there (use --resume to continue it, or --overwrite")
    fails_cleanly(cli, ws, ["train", "gan", "--resume", out, "--overwrite"], 2, "choose one")


def test_train_never_overwrites_its_own_data(cli, ws, train_faces):
    """Data loss: --out holding --data (or the data folder itself) with --overwrite would delete the faces."""
    faces = Path(shutil.copytree(train_faces, ws / "data" / "faces"))
    for out, fragment in ((faces, "is the input"), (ws / "data", "holds the input"), (faces / "run", "lies inside")):
        args = ["train", "gan", "--data", faces, "--out", out, "--steps", "1", "--overwrite", *QUICK]
        fails_cleanly(cli, ws, args, 1, fragment)


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_over(ws, train_faces):
    """Other: `train` killed with kill -9 before its first checkpoint left a run that a rerun refused ("a run
    already exists") and --resume refused too ("no checkpoint"): it had to be deleted by hand. Now both start
    it over from step 0, with a warning; --resume with the recorded settings."""
    run = ws / "run"
    args = ["train", "gan", "--data", train_faces, "--out", run, "--checkpoint-every", "100000", *QUICK]
    for again in (["train", "gan", "--resume", run, "--steps", "3"], [*args, "--steps", "2"]):
        process = facemath_process(*args, "--steps", "100000")
        deadline = time.monotonic() + 180
        while not (run / "run.json").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert (run / "run.json").exists(), process.communicate()
        process.kill()  # kill -9: no checkpoint, no clean-up
        process.communicate()
        assert not list((run / "checkpoints").glob("*.index"))
        result = run_facemath(*again)
        assert result.code == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "stopped before its first checkpoint" in warnings[0], result.stderr
        record = json.loads((run / "run.json").read_text())
        assert record["steps_done"] == int(again[again.index("--steps") + 1])
        assert record["options"]["checkpoint_every"] == 100000  # the recorded settings, also on --resume
        assert sorted(p.name for p in (run / "checkpoints").glob("*.index")) == [f"ckpt-{record['steps_done']}.index"]
        shutil.rmtree(run)


@pytest.mark.slow
def test_a_second_process_training_the_same_folder_is_refused(ws, train_faces):
    """Two runs into one --out would write one run.json and one checkpoint folder: the second waits for nothing
    and is refused, naming the first; the first finishes undisturbed."""
    run = ws / "run"
    first = facemath_process("train", "gan", "--data", train_faces, "--out", run, "--steps", "100000", *QUICK)
    deadline = time.monotonic() + 180
    while not (run / "run.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = run_facemath("train", "gan", "--resume", run, "--steps", "5")
    assert_one_error(second, 1, f"--resume {run}: another facemath process (pid {first.pid}) is writing this folder")
    first.send_signal(signal.SIGTERM)  # as Ctrl-C: a checkpoint, then exit 130
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 130 and "checkpoint saved" in stderr, stderr
    steps = json.loads((run / "run.json").read_text())["steps_done"]
    assert steps > 0 and (run / "checkpoints" / f"ckpt-{steps}.index").exists()


# --- TF_CONFIG and a peer that never comes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tf_config, fragment",
    [
        ('{"cluster": ' * 20_000 + "{}" + "}" * 20_000, "TF_CONFIG: not JSON (nested too deeply)"),
        ('{"cluster": {"worker": ["127.0.0.1:x"]}, "task": {"type": "worker", "index": 0}}', "port 'x' is not"),
        ('{"cluster": {"worker": ["127.0.0.1:99999"]}, "task": {"type": "worker", "index": 0}}', "outside 1-65535"),
        ('{"cluster": {"worker": ["127.0.0.1:0"]}, "task": {"type": "worker", "index": 0}}', "port 0 is outside"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "expected 'host:port'"),
        (
            '{"cluster": {"worker": ["h:1"], "evaluator": ["h:2"]}, "task": {"type": "evaluator", "index": 0}}',
            "an evaluator task or job",
        ),
    ],
    ids=["deep", "port-x", "port-99999", "port-0", "no-port", "evaluator"],
)
def test_bad_tf_configs_are_one_line(cli, ws, train_faces, tf_config, fragment):
    """Exit 70: TF_CONFIG nested deeply (RecursionError), ports that are not ports, an evaluator task."""
    args = ["train", "gan", "--data", train_faces, "--out", ws / "run", "--strategy", "multi-worker", *QUICK]
    before = snapshot(ws)
    assert_one_error(cli(*args, env={"TF_CONFIG": tf_config}), 1, fragment)
    assert snapshot(ws) == before


@pytest.mark.slow
def test_a_worker_that_never_comes_is_named_after_the_cluster_timeout(ws, train_faces):
    """Hang: `train --strategy multi-worker` with a peer that never starts waited for ever, silently. TensorFlow
    blocks (holding the GIL) until every worker is up; --cluster-timeout ends the wait with one line naming the
    missing worker, exit 1, nothing written."""
    from facemath_core.models.distribute import loopback_cluster

    cluster = loopback_cluster(2)
    config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    args = ["train", "gan", "--data", train_faces, "--out", ws / "run", "--strategy", "multi-worker", *QUICK]
    started = time.monotonic()
    result = run_facemath(*args, "--cluster-timeout", "8", env={"TF_CONFIG": config}, timeout=240)
    line = assert_one_error(result, 1, f"worker 1 ({cluster['worker'][1]}) did not start within --cluster-timeout 8 s")
    assert "TF_CONFIG" in line and time.monotonic() - started < 200
    assert not (ws / "run").exists()


# --- export versions ---------------------------------------------------------------------------------------------


def test_export_versions_beyond_what_tf_serving_reads_are_refused(cli, ws, tiny_runs):
    """Exit 0 with a folder TF Serving never serves: `export --version 99999999999999999999` wrote it. TF Serving
    parses a version folder's name with absl::SimpleAtoi into an int64_t and skips it when that fails
    (tensorflow/serving@9d981c5, tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:87-89):
    2^63 - 1 is the largest version. That one is written and found; one more is refused before any work."""
    from facemath_core.models.layout import existing_versions

    for version in (2**63, 99999999999999999999999, 0):
        fails_cleanly(cli, ws, ["export", tiny_runs["oracle"], "--to", ws / "exported", "--version", version], 1)
    largest = 2**63 - 1
    result = cli("export", tiny_runs["oracle"], "--to", ws / "exported", "--version", largest)
    assert result.code == 0, result.stderr
    assert existing_versions(ws / "exported" / "attribute_oracle") == [largest]
    # The next version after it would not be served: refused, nothing added.
    _fails_leaving_files(cli, ws, ["export", tiny_runs["oracle"], "--to", ws / "exported"], "2^63 - 1")


# --- an export interrupted, killed, or on a full disk ------------------------------------------------------------


def _signal_when_a_part_appears(process, folder: Path, signum: int, timeout: float = 180.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        parts = [str(p) for p in folder.rglob(".*.part")] if folder.exists() else []
        if parts:
            process.send_signal(signum)
            return parts
        time.sleep(0.005)
    raise AssertionError(f"no temporary appeared under {folder}; the export ended with {process.poll()}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_export_leaves_nothing_and_says_so(ws, tiny_runs, tiny_export, signum):
    """Half-written: SIGTERM during `export` left `generator/.1.XXXX.part`; SIGINT exited 130 without a word.
    The export goes into a model base path that already holds versions: they are left exactly as they were."""
    to = Path(shutil.copytree(tiny_export, ws / "exported"))
    before = _files(to)  # every file as it was (the model folders' own times change: a temporary came and went)
    process = facemath_process("export", tiny_runs["gan"], "--to", to)
    parts = _signal_when_a_part_appears(process, to, signum)
    _, stderr = process.communicate(timeout=120)
    assert parts and process.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"error: interrupted; nothing was exported ({to} is as it was)"]
    assert _files(to) == before and not list(to.rglob(".*.part"))


@pytest.mark.slow
def test_a_killed_exports_temporary_is_removed_by_the_next_export(ws, tiny_runs):
    """kill -9 leaves a temporary (nothing can remove it then); it names its process, so the next export into the
    folder removes it once that process is gone."""
    to = ws / "exported"
    process = facemath_process("export", tiny_runs["gan"], "--to", to)
    parts = _signal_when_a_part_appears(process, to, signal.SIGKILL)
    process.communicate(timeout=60)
    left = [p for p in to.rglob(".*.part")]
    assert left and all(f".{process.pid}@" in p.name for p in left), parts
    result = run_facemath("export", tiny_runs["gan"], "--to", to)
    assert result.code == 0, result.stderr
    assert not list(to.rglob(".*.part"))
    assert sorted(p.relative_to(to).as_posix() for p in to.glob("*/*")) == [
        "discriminator/1",
        "generator/1",
        "projector/1",
    ]


@pytest.fixture
def small_disk(ws):
    """`small_disk(size)`: a tmpfs of `size` under the workspace, unmounted after the test; a skip saying why when
    none can be mounted here."""
    mounted = []

    def mount(size: str) -> Path:
        disk = ws / f"disk_{size}"
        disk.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", disk], capture_output=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", disk], check=True)


@pytest.mark.parametrize("size", ["60k", "400k"])
def test_an_export_on_a_full_disk_is_one_line_and_publishes_nothing(cli, small_disk, tiny_runs, size):
    """Resource: `export` with 60 KB or 400 KB free ended in ResourceExhaustedError (exit 70)."""
    disk = small_disk(size)
    to = disk / "exported"
    line = assert_one_error(cli("export", tiny_runs["gan"], "--to", to), 1)
    assert line == f"error: no space left on {disk} while writing the export into {to}; nothing was published"
    assert list(disk.iterdir()) == []
