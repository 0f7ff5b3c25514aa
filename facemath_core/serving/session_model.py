"""Running a SavedModel the way tensorflow_model_server does: the TF1 loader and `Session.run` on the tensor names
of a signature. Stricter than `tf.saved_model.load`; export tests and the stand-in server both use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError


class SessionModel:
    """One loaded SavedModel version, with its own graph and session."""

    def __init__(self, path: str | Path, tags: tuple[str, ...] = ("serve",)):
        import tensorflow as tf

        self.path = Path(path)
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            try:
                meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), str(self.path))
            except (RuntimeError, OSError, ValueError, tf.errors.OpError) as exc:  # ValueError: no variables/
                self.session.close()
                raise FacemathError(
                    f"{self.path}: cannot load SavedModel ({' '.join(str(exc).split())[:300]})"
                ) from None
        self.signature_defs = dict(meta_graph.signature_def)

    def run(
        self,
        signature: str,
        inputs: dict[str, np.ndarray],
        outputs: list[str] | None = None,
        timeout: float | None = None,
    ):
        """Feed the signature's inputs by alias; return its outputs (all, or those named) by alias.

        `timeout` (seconds) becomes the run's timeout, as a client's gRPC deadline does in TF Serving.
        """
        import tensorflow as tf
        from tensorflow.core.protobuf import config_pb2

        sig = self.signature_defs[signature]
        wanted = outputs or list(sig.outputs)
        feeds = {sig.inputs[alias].name: value for alias, value in inputs.items()}
        fetches = [sig.outputs[alias].name for alias in wanted]
        options = None
        if timeout is not None:
            options = tf.compat.v1.RunOptions(timeout_in_ms=max(1, int(timeout * 1000)))
        try:
            values = self.session.run(fetches, feed_dict=feeds, options=options)
        except ValueError as exc:
            if "Cannot feed value of shape" not in str(exc):
                raise
            # Session.run refuses, in Python, a feed whose shape differs from the placeholder's; the C++
            # Session::Run that TF Serving calls does not: a shape the graph can run, runs, and one it cannot fails
            # inside the ops. A callable skips the Python check (it is slower to set up: only for these feeds).
            callable_options = config_pb2.CallableOptions(
                feed=list(feeds), fetch=fetches, run_options=options or tf.compat.v1.RunOptions()
            )
            run = self.session._make_callable_from_options(callable_options)
            values = run(*feeds.values())
        return dict(zip(wanted, values, strict=True))

    def close(self):
        self.session.close()
