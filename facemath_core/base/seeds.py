"""Per-image randomness: every random draw a projection makes for a face depends only on --seed and that face.

A face's result must not depend on which other faces share its batch, where it sits in it, or how many batches
or shards the inputs were cut into; otherwise a sharded run could not merge into the unsharded result. So nothing
random comes from one generator walked along the batch. Instead each face has a key (its path relative to the
folder argument it was found under: folders are read one level deep, so that is its file name), and every draw is
seeded from a stable hash (SHA-256, not Python's salted `hash()`) of

    (--seed, key, purpose, restart)

where purpose is "init" (the starting z), "mask" (random masks) or "constraint" (stochastic clipping's redraws)
and restart numbers the --restarts starting points of one face. Two different files with the same name share
their draws, which is harmless: their targets differ.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(*parts) -> int:
    """A 64-bit hash of the parts' text, the same on every machine, process and Python version."""
    text = "\x1f".join(str(part) for part in parts)
    # surrogateescape: a file name that is not UTF-8 hashes as its bytes (every UTF-8 text hashes as before).
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()[:8], "little")


def image_seed(seed: int, key: str, purpose: str, restart: int = 0) -> np.ndarray:
    """Two int64 words for TensorFlow's stateless ops (their seed shape), drawn from the image's hash."""
    value = stable_hash(seed, key, purpose, restart)
    return np.array([value & 0x7FFFFFFF, (value >> 32) & 0x7FFFFFFF], np.int64)


def image_rng(seed: int, key: str, purpose: str, restart: int = 0) -> np.random.Generator:
    """A numpy generator of its own for one image (and one restart of it)."""
    return np.random.default_rng(stable_hash(seed, key, purpose, restart))


def row_seeds(seed: int, keys: list[str], restarts: int, purpose: str) -> np.ndarray:
    """(len(keys) * restarts, 2) seeds, one per optimised row: image i's restarts are rows i*K .. i*K+K-1."""
    rows = [image_seed(seed, key, purpose, r) for key in keys for r in range(restarts)]
    return np.stack(rows) if rows else np.zeros((0, 2), np.int64)


class RowGenerator:
    """What a constraint plugin receives as `generator`: like `tf.random.Generator`, but row i of every draw
    depends only on row i's seed and on how many draws were made before (the step), never on the other rows.

    The first dimension of a requested shape is the batch (one row per optimised z). The draw counter is the only
    state; it is saved with a checkpoint so a resumed run draws what the uninterrupted one would have.
    """

    def __init__(self, rows: int):
        import tensorflow as tf

        self.seeds = tf.Variable(np.zeros((rows, 2), np.int64), trainable=False, name="row_seeds")
        self.draws = tf.Variable(np.int64(0), trainable=False, name="draws")

    def reset(self, seeds: np.ndarray, draws: int = 0) -> None:
        self.seeds.assign(np.asarray(seeds, np.int64))
        self.draws.assign(np.int64(draws))

    def _per_row(self, shape, draw):
        import tensorflow as tf

        count = self.draws.assign_add(1)
        row_shape = tf.convert_to_tensor(shape)[1:]

        def one(seed):
            return draw(row_shape, tf.random.experimental.stateless_fold_in(seed, count))

        # map_fn rather than one batched op: TensorFlow's stateless ops take one seed per call.
        return tf.map_fn(one, self.seeds, fn_output_signature=tf.float32)

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=None):
        import tensorflow as tf

        return self._per_row(shape, lambda s, seed: tf.random.stateless_uniform(s, seed, minval, maxval))

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=None):
        import tensorflow as tf

        return self._per_row(shape, lambda s, seed: tf.random.stateless_normal(s, seed, mean, stddev))

    def truncated_normal(self, shape, mean=0.0, stddev=1.0, dtype=None):
        import tensorflow as tf

        return self._per_row(shape, lambda s, seed: tf.random.stateless_truncated_normal(s, seed, mean, stddev))
