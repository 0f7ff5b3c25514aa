"""Process set-up shared by the CLI and the server: a quiet TensorFlow import, and SIGTERM handled as Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from facemath_core.base.errors import Interrupted


def import_tensorflow_quietly(before_devices=None):
    """Import TensorFlow and initialise its devices with C-level stderr muted; `before_devices()`, when given, runs
    (muted too) between the import and the device set-up: a tf.distribute strategy must be created there.

    TensorFlow's C++ start-up lines ("oneDNN custom operations are on", "Could not find cuda drivers", cuInit
    errors) are written before its log-level settings apply, and would bury the one line a user needs to read.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    _muted["stderr"] = saved
    try:
        import tensorflow as tf

        if before_devices is not None:
            before_devices()
        tf.config.list_physical_devices()
        tf.constant(0.0).numpy()  # first op: device initialisation logs its own lines
        import keras  # noqa: F401
    finally:
        _muted.pop("stderr", None)
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


_muted: dict[str, int] = {}  # while TensorFlow's start-up is muted: the file descriptor of the real stderr


def terminal_stderr() -> int:
    """The file descriptor of the terminal's stderr, also while TensorFlow's start-up has fd 2 muted (for a helper
    process that must be heard then: the multi-worker start-up watchdog)."""
    return _muted.get("stderr", 2)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible(kept: str | Callable[[], str]) -> Iterator[None]:
    """Within: SIGTERM (a shell's `kill`, a cluster stopping a pod) stops the work as Ctrl-C does, by raising
    KeyboardInterrupt, so that every `atomic_dir`/`atomic_file` on the way out removes its temporary (SIGTERM's
    default action ends the process on the spot and leaves them behind); either signal then leaves as
    `Interrupted` (exit 130), one line saying what was kept: `kept` (or what it returns, asked after the clean-up).

    Only the main thread receives signals; elsewhere (a studio job's thread) this is a no-op. A Ctrl-C that the
    process was started to ignore (a shell's background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {kept() if callable(kept) else kept}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
