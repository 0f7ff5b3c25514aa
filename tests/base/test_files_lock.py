"""files.folder_lock: the OS lock writers of one shared folder (deploy, export) take, so that they run one after
the other. Checked against the kernel's own flock semantics: another process, a kill -9, a waiter racing the
release."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from facemath_core.base.errors import OutputError
from facemath_core.base.files import LOCK_NAME, folder_lock

HOLD = """
import sys, time
from facemath_core.base.files import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(folder, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_waits_then_refuses_naming_the_holder(tmp_path):
    holder = _holder(tmp_path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(OutputError, match=rf"--to {tmp_path}: another facemath process \(pid {holder.pid}\)"):
            with folder_lock(tmp_path, "--to", wait=0.5):
                pass
        assert 0.5 <= time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


def test_a_waiter_gets_the_lock_when_the_holder_finishes(tmp_path):
    holder = _holder(tmp_path, 1.0)
    try:
        started = time.monotonic()
        with folder_lock(tmp_path, wait=30):
            waited = time.monotonic() - started
            assert (tmp_path / LOCK_NAME).read_text() == f"pid {os.getpid()}\n"
        assert 0.5 < waited < 10
    finally:
        holder.wait()
    assert not (tmp_path / LOCK_NAME).exists()  # released and removed: nothing left in the user's folder


def test_a_killed_holder_never_blocks_a_later_run(tmp_path):
    holder = _holder(tmp_path, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK_NAME).exists()  # the file stays behind ...
    started = time.monotonic()
    with folder_lock(tmp_path, wait=5):  # ... but the kernel dropped the lock with the process
        pass
    assert time.monotonic() - started < 1


def test_threads_hold_it_one_at_a_time(tmp_path):
    """Many takers racing the release and removal of the lock file: never two inside at once."""
    inside, most, errors = [0], [0], []
    guard = threading.Lock()

    def take():
        try:
            for _ in range(20):
                with folder_lock(tmp_path, wait=30):
                    with guard:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    time.sleep(0.001)
                    with guard:
                        inside[0] -= 1
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and most[0] == 1
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_created_and_removed_again_if_the_work_fails(tmp_path):
    target = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with folder_lock(target):
            assert target.is_dir()
            raise RuntimeError("the work failed")
    assert not (tmp_path / "a").exists()
    with folder_lock(target):
        (target / "result").write_text("x")
    assert (target / "result").exists() and not (target / LOCK_NAME).exists()


def test_a_file_in_the_way_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        with folder_lock(tmp_path / "file"):
            pass
