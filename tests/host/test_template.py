"""The template plugin package (examples/facemath-plugin-template) installs, its own tests pass as they are, and
`facemath plugins --check` passes its components: what a plugin author gets by copying it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import run_facemath

TEMPLATE = Path(__file__).parents[2] / "examples" / "facemath-plugin-template"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("template-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(TEMPLATE)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return target


@pytest.mark.slow
def test_the_templates_tests_pass_out_of_the_box(site, tmp_path):
    shutil.copytree(TEMPLATE / "tests", tmp_path / "tests")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "10 passed" in result.stdout, result.stdout[-2000:]


@pytest.mark.slow
def test_plugins_check_passes_the_template(site, kit_models):
    result = run_facemath(
        "plugins", "plugin-template", "--check", "--json", "--models", kit_models, env={"PYTHONPATH": str(site)}
    )
    assert result.code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"edges", "towards", "stripes"}
    assert {row["result"] for row in rows.values()} == {"ok"}
    assert {row["provider"] for row in rows.values()} == {"facemath-plugin-template 0.1.0"}
