"""The suite passes with a third-party facemath plugin installed, even a broken one (issue 24).

The plugin is installed the way pip leaves one, as far as importlib.metadata can tell: a module and a `.dist-info`
folder with a `facemath` entry point, in a folder on PYTHONPATH of a child pytest. The module raises on import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DISTRIBUTION = "facemath-broken-plugin"

# Collection of the modules that used to build the installed plugins' registry at import time, a registry fixture,
# the built-in plugins' own tests, a command run in child processes, and `facemath plugins` run in the test process
# (with the variable set by the test, and without).
REPRESENTATIVE = [
    "tests/projection/test_bulk.py::test_shard_parsing_and_assignment",
    "tests/projection/test_projection_settings.py",
    "tests/plugins/test_masks_blenders.py",
    "tests/cli/test_cli.py::test_version_and_help",
    "tests/host/test_plugins.py::test_plugins_command_lists_every_kind_and_field",
    "tests/host/test_plugins.py::test_unknown_disabled_names_are_warned_about",
]


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory) -> dict[str, str]:
    """The environment of a child process that has the broken plugin installed."""
    site = tmp_path_factory.mktemp("site")
    (site / "facemath_broken_plugin.py").write_text('raise RuntimeError("this plugin is broken")\n')
    info = site / "facemath_broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[facemath]\nbroken = facemath_broken_plugin\n")
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {key: value for key, value in os.environ.items() if key != "FACEMATH_DISABLED_PLUGINS"}
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_suite_passes_with_a_broken_third_party_plugin(broken_site):
    # The plugin is seen and is broken: facemath loading the installed plugins names it.
    loaded = run(["-c", "from facemath_core.host.manager import load_registry; load_registry()"], broken_site)
    assert DISTRIBUTION in loaded.stderr, (loaded.returncode, loaded.stderr[-2000:])
    # With it installed, collection and the representative tests pass.
    result = run(["-m", "pytest", "-q", *REPRESENTATIVE], broken_site)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "error" not in result.stdout.splitlines()[-1]
