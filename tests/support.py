"""What tests import: running `facemath`, the error contract's checks, and the tiny models' settings.

Fixtures live in conftest.py and are never imported; a helper a test calls by name lives here. Two ways to run the
command line, one result type:

- the `cli` fixture (conftest.py, built on `run_in_process`): `facemath ARGS` in this process through typer's
  CliRunner isolation and facemath's own error boundary (`facemath_core.cli.main`), so exit codes and `error:`
  lines are the real ones and TensorFlow is imported once per test session;
- `run_facemath` / `facemath_process`: the entry point in a child process, for what only a real process shows:
  signals, a kill, environment read at start-up (entry points, TF_CONFIG, tf.distribute devices), a server that
  keeps running, and output TensorFlow writes straight to file descriptor 2.
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
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image
from typer.testing import CliRunner

# The tiny networks every shared model of conftest.py is built with.
TINY = dict(image_size=32, z_dim=8, ngf=8, ndf=8)

# Wide enough that no error line is wrapped (rich reads COLUMNS).
_COLUMNS = "200"


@dataclass(frozen=True)
class Result:
    """What one `facemath` command did: its exit code and everything it wrote."""

    code: int
    stdout: str
    stderr: str

    def __iter__(self):
        """`code, stdout, stderr = cli(...)`."""
        return iter((self.code, self.stdout, self.stderr))


def blocking(*names: str) -> str:
    """A FACEMATH_DISABLED_PLUGINS value that blocks `names` besides what this session already blocks (conftest.py
    blocks every third-party facemath plugin installed): a test that sets the variable keeps them blocked."""
    return ",".join(filter(None, [*names, os.environ.get("FACEMATH_DISABLED_PLUGINS", "")]))


# --- in this process ---------------------------------------------------------------------------------------------


def run_in_process(*args, env: dict[str, str] | None = None) -> Result:
    """`facemath ARGS` through the real error boundary, in this process: stdin empty, stdout and stderr captured
    (typer's CliRunner isolation), `env` set for the call only. Exceptions cannot escape `main` except
    KeyboardInterrupt, which fails the test as it should."""
    from facemath_core import cli as cli_module
    from facemath_core.cli.app import state
    from facemath_core.host.manager import configure

    state["debug"] = False  # a fresh process starts without --debug
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level  # main() quiets TensorFlow's logger; other tests in this process may read it
    argv = ["facemath", *map(str, args)]
    runner = CliRunner()
    with runner.isolation(env={"COLUMNS": _COLUMNS, **(env or {})}) as (stdout, stderr, _):
        # main() silences warnings for the whole process, as the real command should; here it is one call's.
        with warnings.catch_warnings(), mock.patch.object(sys, "argv", argv):
            try:
                cli_module.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                tf_logger.setLevel(level)
                configure(())  # the next library call in this process sees no --plugin of this command line
        out, err = stdout.getvalue(), stderr.getvalue()
    return Result(code, out.decode(runner.charset, "replace"), err.decode(runner.charset, "replace"))


# --- in a child process ------------------------------------------------------------------------------------------


def _interactive_signals():
    """In the child: Ctrl-C and SIGTERM as a terminal delivers them. A non-interactive shell starts background
    jobs (`pytest ... &`) with SIGINT ignored, the child inherits that, and Python then never raises
    KeyboardInterrupt: a Ctrl-C test would hang for a reason that is the shell's, not facemath's."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def facemath_process(*args, env: dict[str, str] | None = None, module: str | None = None) -> subprocess.Popen:
    """The real `facemath` entry point started in a child process, as a user starts it, with text pipes for
    stdout and stderr; `env` is added to this process's environment. `module` starts it as `python -m MODULE`
    (facemath, facemath_core) instead of calling `facemath_core.cli.main`, as the console script does."""
    start = ["-m", module] if module else ["-c", "from facemath_core.cli import main; main()"]
    return subprocess.Popen(
        [sys.executable, *start, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": _COLUMNS},
        preexec_fn=_interactive_signals,
    )


def run_facemath(*args, env: dict[str, str] | None = None, module: str | None = None, timeout: float = 300) -> Result:
    """`facemath ARGS` in a child process (facemath_process), run to its end; killed after `timeout` seconds."""
    process = facemath_process(*args, env=env, module=module)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return Result(process.returncode, stdout, stderr)


# --- the error contract ----------------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict:
    """Everything under a folder (hidden files included) with size and modification time."""
    if not folder.exists():
        return {}
    entries = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()  # links themselves: a link loop is part of the bad-inputs corpus
        entries[str(path.relative_to(folder))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


def assert_one_error(result: Result, code: int = 1, *fragments: str, after_work: bool = False) -> str:
    """Exit code, one `error:` line and no traceback; unless the failure comes `after_work` (a progress bar
    already drawn), nothing else on stderr either. Returns the error line."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    others = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert after_work or others == errors, result.stderr  # no stray warnings or progress around the error
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def fails_cleanly(cli, workspace: Path, args: list, code: int = 1, *fragments: str) -> str:
    """Run a command (with the `cli` fixture) that must fail, and check that nothing under `workspace` was created
    or changed. Returns the error line."""
    before = snapshot(workspace)
    line = assert_one_error(cli(*args), code, *fragments)
    assert snapshot(workspace) == before, line
    return line


# --- the corpus's ingredients: images ---------------------------------------------------------------------------


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


# Bad image files: name -> (bytes, what the error line must say about it).
BAD_IMAGES = {
    "empty.png": (b"", "empty file"),
    "truncated.png": (good_png()[:200], "truncated"),
    "text.png": (b"hello, I am not a picture\n" * 20, "not an image"),
    "bomb.png": (png_with_size(100_000, 100_000), "pixel limit"),
    "header_only.gif": (b"GIF89a" + b"\x00" * 10, "not an image"),
}


# --- the tiny models ---------------------------------------------------------------------------------------------


def train_tiny_encoder(run, generator, tiny_runs, steps: int = 20, version: int | None = None):
    """A few steps of `train encoder` for the tiny generator folder `generator`, on the GAN run's faces."""
    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import train

    data = json.loads((tiny_runs["gan"] / "run.json").read_text())["data"]
    train(
        "encoder",
        data,
        run,
        ArchConfig(**TINY),
        TrainOptions(
            steps=steps,
            batch_size=16,
            lr=1e-3,
            sample_every=steps,
            checkpoint_every=steps,
            generator=str(generator),
            generator_version=version,
        ),
    )
    return run


def write_generated_faces(backend, folder: Path, count: int, seed: int) -> Path:
    """`count` faces the backend's generator makes exactly (z uniform in +-0.8 from `seed`), as face0.png ... in
    `folder`: targets whose true z exists."""
    from facemath_core.data.images import from_unit  # support.py is imported before TensorFlow is needed

    z = np.random.default_rng(seed).uniform(-0.8, 0.8, (count, 8)).astype(np.float32)
    for i, image in enumerate(backend.generate(z)):
        Image.fromarray(from_unit(image)).save(folder / f"face{i}.png")
    return folder
