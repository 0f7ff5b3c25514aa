"""Process set-up shared by the CLI and the server: a quiet TensorFlow import."""

from __future__ import annotations

import os
import sys


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
    try:
        import tensorflow as tf

        if before_devices is not None:
            before_devices()
        tf.config.list_physical_devices()
        tf.constant(0.0).numpy()  # first op: device initialisation logs its own lines
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
