"""Shared fixtures: tiny face folders rendered once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


TINY = dict(image_size=32, z_dim=8, ngf=8, ndf=8)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, train_faces):
    """A few steps of each kind of run with tiny networks: {kind: run folder}."""
    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import train

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    # 60 GAN steps: an untrained generator barely depends on z, and projection tests need one that does.
    for kind, steps in (("gan", 60), ("vae", 20), ("oracle", 20)):
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


def train_tiny_encoder(run, generator, tiny_runs, steps: int = 20, version: int | None = None):
    """A few steps of `train encoder` for the tiny generator folder `generator`, on the GAN run's faces."""
    import json

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


def run_cli(*args, env=None):
    """Run the real `facemath` entry point in a subprocess, as a user would."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", "from facemath_core.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        timeout=300,
    )
