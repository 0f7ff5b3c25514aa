"""Atomic outputs appear whole, with the permissions a plain write would give, or not at all."""

import os
import stat

import pytest

from facemath_core.base.files import atomic_dir, atomic_file


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

    from facemath_core.base.files import to_json

    text = to_json({"auc": np.float32(0.5), "success": float("nan"), "rows": [np.int64(3), float("inf")]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}")) == {
        "auc": 0.5,
        "success": None,
        "rows": [3, None],
    }


# --- replacing, failing, refusing -------------------------------------------------------------------------------


def test_replacing_a_file_or_folder_leaves_nothing_beside_it(tmp_path):
    """`--overwrite` of a file used to leave `.NAME.old-PID` behind (rmtree cannot delete a file)."""
    (tmp_path / "result").write_text("an old file\n")
    with atomic_dir(tmp_path / "result") as folder:
        (folder / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]
    assert (tmp_path / "result" / "new.txt").read_text() == "new"
    with atomic_dir(tmp_path / "result") as folder:  # folder over folder
        (folder / "newer.txt").write_text("newer")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["newer.txt", "result"]
    with atomic_file(tmp_path / "result") as handle:  # file over folder
        handle.write(b"a file again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"] and (tmp_path / "result").is_file()


def test_a_failed_swap_puts_the_old_result_back(tmp_path, monkeypatch):
    from facemath_core.base import files

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("keep me")
    real_replace, calls = os.replace, []

    def second_rename_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", second_rename_fails)
    with pytest.raises(OSError), atomic_dir(tmp_path / "out") as folder:
        (folder / "new.txt").write_text("new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["old.txt", "out"]
    assert (tmp_path / "out" / "old.txt").read_text() == "keep me"


def test_folders_created_for_a_failed_write_are_removed(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_file(tmp_path / "a" / "b" / "c.png") as handle:
        handle.write(b"half")
        raise KeyboardInterrupt
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "x" / "y") as folder:
        (folder / "deep").mkdir()
        raise RuntimeError("plugin failed")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destinations_are_refused_before_any_work(tmp_path, monkeypatch):
    from facemath_core.base.errors import OutputError
    from facemath_core.base.files import check_new_dir, check_new_file

    (tmp_path / "file").write_text("x")
    for check in (lambda p: check_new_dir(p, overwrite=True), check_new_file):
        with pytest.raises(OutputError, match=r"--out .*file/sub/out: .*file is a file, not a folder"):
            check(tmp_path / "file" / "sub" / "out")
    with pytest.raises(OutputError, match="is a folder; name a file"):
        check_new_file(tmp_path)
    monkeypatch.chdir(tmp_path / ".")
    (tmp_path / "inside").mkdir()
    monkeypatch.chdir(tmp_path / "inside")
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(OutputError, match="current folder"):
            check_new_dir(out, overwrite=True)
    with pytest.raises(OutputError, match="name a new folder"):
        with atomic_dir("."):
            pass
    # Writing through the helpers without a check first still ends in one OutputError, not an OSError.
    with pytest.raises(OutputError, match="cannot create"):
        with atomic_file(tmp_path / "file" / "x.png"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "inside"]
    assert list((tmp_path / "inside").iterdir()) == []


def test_a_read_only_folder_is_refused(tmp_path):
    from facemath_core.base.errors import OutputError
    from facemath_core.base.files import check_new_dir

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("root may write into a read-only folder; the path-under-a-file cases cover root")
        with pytest.raises(OutputError, match="permission denied"):
            check_new_dir(locked / "out", overwrite=False)
    finally:
        locked.chmod(0o755)
