"""Shared fixtures: tiny face folders and models built once per session, the `cli` runner, the bad-inputs corpus's
workspace. Tests never import this file: what they import by name is in support.py."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from .support import TINY, blocking, run_in_process, train_tiny_encoder, write_generated_faces

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Everything the suite and the processes it starts write to a temporary folder (pytest's tmp_path, the studio's
# session folders, TensorFlow's autograph files) lands in one folder of this session, removed when it ends: a
# full run once filled a CI machine's /tmp. pytest itself keeps only the tmp_path of failed tests
# (tmp_path_retention_policy in pyproject.toml).
_SESSION_TMP = tempfile.mkdtemp(prefix="facemath-tests-")
os.environ["TMPDIR"] = _SESSION_TMP
tempfile.tempdir = _SESSION_TMP


def pytest_unconfigure(config):
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)


def _third_party_plugins() -> list[str]:
    """The distributions other than facemath that register `facemath` entry points (reading metadata imports none)."""
    return sorted(
        {
            dist.metadata["Name"]
            for dist in importlib.metadata.distributions()
            if dist.metadata["Name"] != "facemath" and any(ep.group == "facemath" for ep in dist.entry_points)
        }
    )


# The suite tests facemath and its own plugins. A third-party facemath plugin installed beside them, working or
# broken, is blocked for the whole session and every `facemath` process it starts, the documented way
# (FACEMATH_DISABLED_PLUGINS, by distribution name), so it can neither fail a test nor change what one sees.
# tests/test_third_party_plugins.py installs a broken one and runs tests with it.
if third_party := _third_party_plugins():
    os.environ["FACEMATH_DISABLED_PLUGINS"] = blocking(*third_party)


@pytest.fixture(scope="session")
def cli():
    """`cli(*args, env=None) -> Result`: `facemath ARGS` in this process, through typer's CliRunner and facemath's
    error boundary (support.run_in_process). For what needs a real process: support.run_facemath."""
    return run_in_process


@pytest.fixture(scope="session")
def synth_faces(tmp_path_factory):
    """48 synthetic 32x32 faces in CelebA layout."""
    from facemath_core.data.synth import write_synthetic_folder

    out = tmp_path_factory.mktemp("synth") / "faces"
    write_synthetic_folder(out, 48, seed=3, size=32)
    return out


@pytest.fixture(scope="session")
def train_faces(tmp_path_factory):
    """160 synthetic 32x32 faces: enough for the trainers' minimum of 64 training images."""
    from facemath_core.data.synth import write_synthetic_folder

    out = tmp_path_factory.mktemp("train") / "faces"
    write_synthetic_folder(out, 160, seed=5, size=32)
    return out


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, train_faces):
    """A few steps of each kind of run with tiny networks: {kind: run folder}."""
    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import train

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    # 60 GAN steps: an untrained generator barely depends on z, and projection tests need one that does.
    for kind, steps in (("gan", 60), ("vae", 20), ("oracle", 20), ("vaegan", 20)):
        runs[kind] = root / kind
        train(
            kind,
            str(train_faces),
            runs[kind],
            ArchConfig(**TINY),
            TrainOptions(steps=steps, batch_size=16, sample_every=steps // 2, checkpoint_every=steps // 2),
        )
    return runs


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_runs):
    """The tiny runs exported to one model base path."""
    from facemath_core.models.export import export_run

    base = tmp_path_factory.mktemp("exported")
    for run in tiny_runs.values():
        export_run(run, base)
    # The encoder inverts the exported generator, so it trains after the export (and is then a run like the rest).
    tiny_runs["encoder"] = train_tiny_encoder(tiny_runs["gan"].parent / "encoder", base / "generator", tiny_runs)
    export_run(tiny_runs["encoder"], base)
    return base


@pytest.fixture(scope="session")
def kit_models(tmp_path_factory) -> Path:
    """Every model untrained and tiny, as a plugin's own tests get them (`facemath_core.testing.tiny_models`): built
    in seconds, for tests of plugin plumbing that need models of the right shapes, not trained ones."""
    from facemath_core.testing import tiny_models

    return tiny_models(tmp_path_factory.mktemp("kit") / "models")


# --- the bad-inputs corpus (tests/*/test_bad_inputs_*.py) --------------------------------------------------------


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """A workspace folder, also the current folder (so `--out .` means it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_backend(tiny_export):
    """The tiny models, run in this process."""
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="session")
def generated_faces(tiny_backend, tmp_path_factory) -> Path:
    """Six faces the tiny generator can make exactly (face0.png ... face5.png)."""
    folder = tmp_path_factory.mktemp("generated_faces") / "faces"
    folder.mkdir()
    return write_generated_faces(tiny_backend, folder, 6, seed=7)


@pytest.fixture(scope="session")
def good_latents(tmp_path_factory) -> Path:
    """A valid latents file of four GAN latents named f0 ... f3 (z_dim 8)."""
    from facemath_core.latent.latents import Latents, save_latents

    path = tmp_path_factory.mktemp("good_latents") / "latents.npz"
    z = np.random.default_rng(1).uniform(-0.8, 0.8, (4, 8)).astype(np.float32)
    save_latents(path, Latents([f"f{i}.png" for i in range(4)], z, "gan", "generator", 1, "projection"))
    return path
