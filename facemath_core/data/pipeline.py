"""Faces for training: one split of a face folder or of TFRecord shards, decoded once, and the tf.data pipeline
over them.

Above both readers (`folders` for CelebA-format folders, `tfrecords` for shards), which is why it is its own module:
the shard packer reads folders, and this reads either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from facemath_core.data.folders import load_folder_images, open_faces
from facemath_core.data.images import to_unit
from facemath_core.data.tfrecords import is_shard_folder, load_shards


@dataclass(frozen=True)
class LoadedFaces:
    """One split of a face folder or a shard folder, decoded and resized, in the folder's order."""

    names: list[str]
    images: np.ndarray  # (N, size, size, 3) uint8
    attributes: np.ndarray | None  # (N, K) int8 of +1 / -1
    attribute_names: tuple[str, ...]


def load_split(data: str | os.PathLike, size: int, split: str = "train") -> LoadedFaces:
    """The faces of one split of `data`: a face folder, or TFRecord shards from `facemath data pack` (detected by
    their shards.json)."""

    if is_shard_folder(data):
        return LoadedFaces(*load_shards(data, size, split))
    faces = open_faces(data).split(split)
    return LoadedFaces(faces.names, load_folder_images(faces, size), faces.attributes, faces.attribute_names)


def make_dataset(
    images_uint8: np.ndarray, batch_size: int, seed: int, shuffle: bool = True, labels=None, epochs: int | None = 1
):
    """A tf.data pipeline over decoded images: shuffle, batch, scale to [-1, 1], prefetch; `epochs` None: endless.

    Decoding, cropping and resizing happen once, up front, in `load_folder_images`: a 2-core machine cannot afford
    to decode PNGs again every epoch, and doing it once lets every bad file be reported before training starts.

    Epoch e is a stateless permutation seeded by (seed, e), not a `shuffle` with its own hidden state: every
    iterator of the pipeline yields the same batches. Keras takes one batch from a fresh iterator to build a
    model under a tf.distribute strategy, and a `reshuffle_each_iteration` shuffle would then give a distributed
    run other batches than a one-device run.
    """
    import tensorflow as tf

    n = len(images_uint8)
    tensors = images_uint8 if labels is None else (images_uint8, labels)
    if not shuffle:
        ds = tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size).repeat(epochs)
    else:
        table = tf.nest.map_structure(tf.convert_to_tensor, tensors)

        def permutation(epoch):
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)

        epoch_numbers = tf.data.Dataset.counter() if epochs is None else tf.data.Dataset.range(epochs)
        ds = epoch_numbers.flat_map(permutation)
        ds = ds.map(lambda idx: tf.nest.map_structure(lambda t: tf.gather(t, idx), table))

    def scale(x, *rest):
        return (to_unit(x), *rest) if rest else to_unit(x)

    ds = ds.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    # The decoded images are in memory, not in files, so a multi-worker run cannot shard by file (AUTO would try
    # FILE and fall back with a warning). DATA: every worker builds the same seeded pipeline and keeps its own
    # slice of each global batch, so the workers together see exactly the batches one process would.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
