"""The example plugin package under examples/ installs and works from the CLI through its entry point."""

import subprocess
import sys
from pathlib import Path

import pytest

from ..support import blocking, run_facemath

pytestmark = pytest.mark.slow  # pip-installs the example plugin, then runs facemath in child processes

EXAMPLE = Path(__file__).parents[2] / "examples" / "facemath-tv-loss"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install the example into a private folder (the test environment itself stays untouched)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXAMPLE)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {"PYTHONPATH": str(target)}


def test_the_example_is_found_through_its_entry_point(installed):
    result = run_facemath("plugins", "--kind", "loss", env=installed)
    assert result.code == 0, result.stderr
    assert "tv" in result.stdout and "facemath-tv-loss 1.0.0" in result.stdout


def test_the_example_loss_works_in_a_projection(installed, tiny_export, tmp_path):
    faces = Path(__file__).parents[2] / "examples" / "faces"
    result = run_facemath(
        "project",
        str(faces / "000001.png"),
        "--models",
        str(tiny_export),
        "--steps",
        "3",
        "--loss-plugin",
        "tv=0.01",
        "--out",
        str(tmp_path / "out"),
        env=installed,
    )
    assert result.code == 0, result.stderr
    from facemath_core.latent.latents import load_latents

    latents = load_latents(tmp_path / "out" / "latents.npz")
    assert set(latents.losses) == {"total", "contextual", "tv"} and latents.losses["tv"][0] > 0


def test_it_can_be_blocked(installed):
    result = run_facemath(
        "plugins", "--kind", "loss", env={**installed, "FACEMATH_DISABLED_PLUGINS": blocking("tv-loss")}
    )
    assert result.code == 0 and "facemath-tv-loss" not in result.stdout


@pytest.mark.parametrize("name", ["facemath_tv", "facemath-tv-loss"])
def test_it_can_be_blocked_by_module_or_distribution_name(installed, name):
    result = run_facemath("plugins", "--kind", "loss", env={**installed, "FACEMATH_DISABLED_PLUGINS": blocking(name)})
    assert result.code == 0 and "facemath-tv-loss" not in result.stdout
    assert "warning" not in result.stderr


def test_errors_name_the_installed_distribution(installed, tiny_export, tmp_path):
    faces = Path(__file__).parents[2] / "examples" / "faces"
    common = ["project", str(faces / "000001.png"), "--models", str(tiny_export), "--steps", "1", "-l", "tv"]
    typed = run_facemath(*common, "--param", "tv.scale=abc", "-o", str(tmp_path / "a"), env=installed)
    assert typed.code == 1 and "Traceback" not in typed.stderr
    assert "error: --param tv.scale=abc: scale of loss 'tv' (facemath-tv-loss 1.0.0) is a number" in typed.stderr
    # A value that breaks the term's contract (1e300 overflows float32): caught before the first step.
    huge = run_facemath(*common, "--param", "tv.scale=1e300", "-o", str(tmp_path / "b"), env=installed)
    assert huge.code == 1 and "Traceback" not in huge.stderr
    message = "error: loss 'tv' (facemath-tv-loss 1.0.0) returned an infinite value for every image of a check batch"
    assert message in huge.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.partial").exists()
