"""Atomic outputs appear whole, with the permissions a plain write would give, or not at all."""

import os
import stat

import pytest

from facemath_core.files import atomic_dir, atomic_file


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_outputs_get_the_permissions_of_a_plain_write(tmp_path, umask_022):
    with atomic_file(tmp_path / "a.bin") as handle:
        handle.write(b"x")
    with atomic_dir(tmp_path / "out") as folder:
        (folder / "inside.txt").write_text("y")
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "a.bin") as handle:
        handle.write(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as folder:
        (folder / "half.txt").write_text("y")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_json_outputs_are_strict():
    import json

    import numpy as np

    from facemath_core.files import to_json

    text = to_json({"auc": np.float32(0.5), "success": float("nan"), "rows": [np.int64(3), float("inf")]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}")) == {
        "auc": 0.5,
        "success": None,
        "rows": [3, None],
    }
