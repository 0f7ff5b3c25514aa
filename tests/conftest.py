"""Shared fixtures: tiny face folders rendered once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def synth_faces(tmp_path_factory):
    """48 synthetic 32x32 faces in CelebA layout."""
    from facemath_core.synth import write_synthetic_folder

    out = tmp_path_factory.mktemp("synth") / "faces"
    write_synthetic_folder(out, 48, seed=3, size=32)
    return out


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
