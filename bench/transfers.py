"""Counting what crosses between the host and the device during a projection, and timing runs of it, for
bench/projection.py and bench/serving.py.

A host transfer here is a device value read by Python (`.numpy()`, `np.asarray(tensor)`, `float(tensor)`, `bool()`,
...: one call of `EagerTensor.numpy/__array__/__float__/...`) or a variable assigned from a host value (numpy or
Python). Calls of `tf.numpy_function` (a remote backend's requests) are counted as RPCs by the backend.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

_READS = ("numpy", "__array__", "__float__", "__int__", "__bool__", "__index__")


class HostTransfers:
    """`with counter.counting(): ...` counts `reads` and `writes` inside the block (any thread)."""

    def __init__(self):
        self.reads = self.writes = 0
        self._on = False
        self._installed = False

    def install(self) -> None:
        import tensorflow as tf
        from tensorflow.python.framework import ops

        if self._installed:
            return
        counter = self
        for name in _READS:
            original = getattr(ops._EagerTensorBase, name)

            def read(self, *args, _original=original, **kwargs):
                if counter._on:
                    counter.reads += 1
                return _original(self, *args, **kwargs)

            setattr(ops._EagerTensorBase, name, read)
        variable_class = type(tf.Variable(0.0))  # ResourceVariable has an `assign` of its own, not its base's
        original_assign = variable_class.assign

        def assign(self, value, *args, **kwargs):
            if counter._on and not tf.is_tensor(value) and not isinstance(value, tf.Variable):
                counter.writes += 1
            return original_assign(self, value, *args, **kwargs)

        variable_class.assign = assign
        self._installed = True

    @contextmanager
    def counting(self):
        self.install()
        self.reads = self.writes = 0
        self._on = True
        try:
            yield self
        finally:
            self._on = False


def spread(values: list[float]) -> dict:
    """Median and range of a measurement taken in rounds."""
    values = sorted(float(v) for v in values)
    return {"median": float(np.median(values)), "min": values[0], "max": values[-1], "rounds": len(values)}


def timed_run_factory(run, prepared, backend=None, transfers: HostTransfers | None = None):
    """A function that runs `run` (a ProjectionRun) on `prepared` into memory and returns what its steps took,
    from the run's start to its last batch done (the starting z and the loop; not G(z), PSNR and flags after):
    `{"seconds", "rpcs", "bytes"}` (the backend's counters, when it has them) and, with `transfers`, the host
    transfers counted in that span."""
    from facemath_core.projection.run import MemorySink

    def counters():
        return getattr(backend, "calls", 0), getattr(backend, "bytes_sent", 0) + getattr(backend, "bytes_received", 0)

    class Timer(MemorySink):
        def begin(self, run, prepared, resume_from):
            if transfers is not None:
                transfers.install()
                transfers.reads = transfers.writes = 0
                transfers._on = True
            self.counted = counters()
            self.started = time.perf_counter()

        def batch_done(self, batch, result):
            self.ended = time.perf_counter()
            self.counted = tuple(b - a for a, b in zip(self.counted, counters(), strict=True))
            if transfers is not None:
                transfers._on = False

    def timed() -> dict:
        sink = Timer()
        run.run(prepared, sink, warn=lambda line: None)
        return {"seconds": sink.ended - sink.started, "rpcs": sink.counted[0], "bytes": sink.counted[1]}

    return timed
