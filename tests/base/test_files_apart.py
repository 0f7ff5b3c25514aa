"""files.py's rules for what a write may touch: `check_apart` (an output never is, holds or lies in an input),
temporaries named by their process and removed once it is gone (`clean_stale_parts`), and a full disk as one
line (`disk_space`, on a real tmpfs when this process may mount one)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facemath_core.base.errors import OutputError
from facemath_core.base.files import (
    atomic_dir,
    atomic_file,
    check_apart,
    check_new_dir,
    clean_stale_parts,
    disk_space,
    is_disk_full,
    mount_point,
)

# --- check_apart ---------------------------------------------------------------------------------------------


def test_an_output_that_is_holds_or_lies_in_an_input_is_refused(tmp_path):
    faces = tmp_path / "data" / "faces"
    faces.mkdir(parents=True)
    (faces / "a.png").write_bytes(b"x")
    cases = {
        faces: "is the input",  # data pack faces --out faces
        tmp_path / "data": "holds the input",  # the parent of what is read
        faces / "a.png": "lies inside the input folder",  # data grid --out over one of its own images
        faces / "shards": "lies inside the input folder",
    }
    for out, fragment in cases.items():
        with pytest.raises(OutputError, match=fragment):
            check_apart(out, [faces])
    with pytest.raises(OutputError, match="holds the input"):
        check_apart(tmp_path / "data", [faces / "a.png"])
    # Beside the input, or the input a single file in a folder the output only sits beside: allowed.
    assert check_apart(tmp_path / "data" / "out", [faces]) == tmp_path / "data" / "out"
    assert check_apart(faces.parent / "a_out", [faces / "a.png"]) == faces.parent / "a_out"


def test_links_are_followed_as_the_command_follows_them(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(faces)
    # Reading through a link reads the folder it names: an output there would replace it.
    with pytest.raises(OutputError, match="is the input"):
        check_apart(faces, [alias])
    # Replacing a link replaces the link itself, never the folder it points to: an output named by the link is
    # not the input folder (publish swaps the link).
    assert check_apart(alias, [tmp_path / "elsewhere"]) == alias
    nested = tmp_path / "runs"
    nested.mkdir()
    (nested / "faces").symlink_to(faces)
    with pytest.raises(OutputError, match="lies inside the input folder"):
        check_apart(faces / "out", [nested / "faces"])


def test_check_new_dir_refuses_before_looking_at_overwrite(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "a.png").write_bytes(b"x")
    with pytest.raises(OutputError, match="replacing it would delete what this command reads"):
        check_new_dir(tmp_path, overwrite=True, reads=[faces])
    assert (faces / "a.png").read_bytes() == b"x"


# --- temporaries of dead processes -----------------------------------------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid  # reaped: no process has it (until the kernel hands it out again, far later)


def test_temporaries_carry_their_process_and_stale_ones_are_removed(tmp_path):
    from facemath_core.base.files import _host

    seen = []
    with atomic_file(tmp_path / "f.txt", "w") as handle:
        seen += [p.name for p in tmp_path.iterdir()]
        handle.write("x")
    assert len(seen) == 1 and seen[0].startswith(f".f.txt.{os.getpid()}@{_host()}.") and seen[0].endswith(".part")

    dead = _dead_pid()
    stale_dir = tmp_path / f".1.{dead}@{_host()}.abcd1234.part"
    stale_dir.mkdir()
    (stale_dir / "saved_model.pb").write_bytes(b"half")
    stale_file = tmp_path / f".run.json.{dead}@{_host()}.x_y_z123.part"
    stale_file.write_text("half")
    live = tmp_path / f".2.{os.getppid()}@{_host()}.abcd1234.part"  # our parent: alive
    live.mkdir()
    mine = tmp_path / f".3.{os.getpid()}@{_host()}.abcd1234.part"
    mine.mkdir()
    other_host = tmp_path / f".4.{dead}@{_host()}x.abcd1234.part"  # another machine on shared storage
    other_host.mkdir()
    legacy = tmp_path / ".5.abcd1234.part"  # no owner recorded: cannot be proved stale
    legacy.mkdir()
    assert sorted(p.name for p in clean_stale_parts(tmp_path)) == sorted([stale_dir.name, stale_file.name])
    assert all(p.exists() for p in (live, mine, other_host, legacy))
    # A later atomic_dir into the folder cleans it by itself.
    stale_dir.mkdir()
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "x").write_text("x")
    assert not stale_dir.exists() and (tmp_path / "out" / "x").exists()


# --- a full disk -----------------------------------------------------------------------------------------------


def test_disk_full_is_recognised_by_errno_and_by_tensorflows_error_name():
    class ResourceExhaustedError(Exception):  # tensorflow.errors' name, without importing TensorFlow
        pass

    assert is_disk_full(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert is_disk_full(OSError(errno.EDQUOT, "quota"))
    assert is_disk_full(ResourceExhaustedError("out.tfrecord; No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "denied"))
    assert not is_disk_full(ResourceExhaustedError("OOM when allocating tensor"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs mounted at tmp_path/disk, or a skip saying why it cannot be."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_and_nothing_is_published(tiny_disk):
    assert mount_point(tiny_disk / "a" / "b") == tiny_disk
    with pytest.raises(OutputError) as raised, disk_space(tiny_disk / "out", "the test folder"):
        with atomic_dir(tiny_disk / "out") as tmp:
            (tmp / "big").write_bytes(b"\0" * 200_000)
    assert str(raised.value) == f"no space left on {tiny_disk} while writing the test folder; nothing was published"
    assert list(Path(tiny_disk).iterdir()) == []
