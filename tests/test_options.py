"""Consistent options (issue 15): one name per meaning, deprecated spellings, one overwrite rule, plain help."""

import numpy as np
from PIL import Image

from .conftest import run_cli


def test_help_has_no_type_tags_on_flags_or_repeatable_options():
    for command in (["project"], ["data", "synth"], ["attributes"], ["plugins", "list"], []):
        result = run_cli(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout and "<list[" not in result.stdout, (command, result.stdout)
    assert "--overwrite" in run_cli("project", "--help").stdout  # the flags are still listed


def test_deploy_requires_to(tmp_path):
    result = run_cli("deploy", "--models", str(tmp_path))
    assert result.returncode == 2 and "--to" in result.stderr and "Traceback" not in result.stderr
    assert "/models" not in run_cli("deploy", "--help").stdout.split("--to")[1].split("\n")[0]


def test_data_grid_refuses_to_overwrite_without_overwrite(synth_faces, tmp_path):
    grid = tmp_path / "grid.png"
    args = ["data", "grid", str(synth_faces), "-o", str(grid), "-n", "4", "--size", "16", "--columns", "2"]
    assert run_cli(*args).returncode == 0
    first = np.asarray(Image.open(grid))
    assert first.shape == (2 * 18 + 2, 2 * 18 + 2, 3)  # -n 4 faces, 2 per row
    grid.write_bytes(b"mine")
    result = run_cli(*args)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: --out {grid}: file exists (use --overwrite to replace it)"
    ]
    assert grid.read_bytes() == b"mine"  # nothing of the user's lost
    assert run_cli(*args, "--overwrite").returncode == 0
    np.testing.assert_array_equal(np.asarray(Image.open(grid)), first)
