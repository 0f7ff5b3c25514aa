"""Face folders packed as TFRecord shards (`facemath data pack`), and reading them back as training data.

A shard folder holds `shard-00000-of-00004.tfrecord`... and `shards.json`. Each record is one face: its file's
bytes exactly as they were on disk (so nothing is re-encoded and the round trip is lossless), its file name, its
attributes (+1/-1, CelebA's coding) and its split (0 train, 1 held-out, as `dataset.open_faces` decided it).
Decoding goes through the same PIL path as a folder (`images.crop_and_resize`), in a parallel tf.data map, so a shard
folder and the folder it came from give the same pixels.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir
from facemath_core.data.folders import open_faces
from facemath_core.data.images import _to_rgb, crop_and_resize

INDEX_FILE = "shards.json"
FORMAT = "facemath-faces-tfrecord"
FORMAT_VERSION = 1
DEFAULT_SHARD_SIZE = 10_000  # about 100-150 MB of CelebA JPEGs per shard: the size tf.data guides recommend


def is_shard_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / INDEX_FILE).is_file()


def _example(data: bytes, name: str, attributes, held_out: bool):
    import tensorflow as tf

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
        "attributes": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in attributes])),
        "held_out": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(held_out)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def pack_folder(folder: str | os.PathLike, out: str | os.PathLike, shard_size: int = DEFAULT_SHARD_SIZE) -> dict:
    """Write every face of `folder` into TFRecord shards under `out` (published whole); returns the index."""
    import tensorflow as tf

    if shard_size < 1:
        raise FacemathError(f"--shard-size {shard_size}: must be at least 1")
    faces = open_faces(folder)
    total = len(faces.paths)
    count = -(-total // shard_size)
    no_attributes = np.zeros((total, 0), np.int8)
    attributes = faces.attributes if faces.attributes is not None else no_attributes
    shards = []
    with atomic_dir(out) as tmp:
        for k in range(count):
            name = f"shard-{k:05d}-of-{count:05d}.tfrecord"
            rows = range(k * shard_size, min(total, (k + 1) * shard_size))
            with tf.io.TFRecordWriter(str(tmp / name)) as writer:
                for i in rows:
                    path = faces.paths[i]
                    try:
                        data = path.read_bytes()
                    except OSError as exc:
                        raise FacemathError(f"{path}: cannot read ({exc.strerror})") from None
                    writer.write(_example(data, path.name, attributes[i], faces.held_out[i]))
            shards.append({"file": name, "count": len(rows)})
        index = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "count": total,
            "held_out": int(faces.held_out.sum()),
            "attribute_names": list(faces.attribute_names),
            "shards": shards,
            "source": str(Path(folder).resolve()),
        }
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return index


def read_index(folder: str | os.PathLike) -> dict:
    path = Path(folder) / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FacemathError(f"{path}: cannot read the shard index ({exc})") from None
    if index.get("format") != FORMAT or index.get("version") != FORMAT_VERSION:
        raise FacemathError(f"{path}: not a facemath shard index (format {FORMAT} version {FORMAT_VERSION})")
    missing = [s["file"] for s in index["shards"] if not (Path(folder) / s["file"]).is_file()]
    if missing:
        raise FacemathError(f"{Path(folder) / missing[0]}: shard listed in {INDEX_FILE} is missing")
    return index


def _decode(data: bytes, name: bytes, size: int, crop: str) -> np.ndarray:
    """One record's image through the folder loader's own steps (PIL decode, RGB, crop, LANCZOS resize)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = _to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FacemathError(f"{name.decode()}: cannot decode ({exc})") from None
    return crop_and_resize(rgb, size, crop)


def shard_dataset(folder: str | os.PathLike, size: int, split: str = "all", crop: str = "auto"):
    """A tf.data pipeline of (image uint8 (size, size, 3), attributes int8 (K,), name) from a shard folder.

    Shards are read in order (so the faces come in the order of the folder they were packed from), parsed and
    filtered by split, then decoded in a parallel map (PIL releases the GIL while it decodes) and prefetched.
    """
    import tensorflow as tf

    if split not in ("train", "held-out", "all"):
        raise FacemathError(f"--split {split!r}: choose train, held-out or all")
    index = read_index(folder)
    k = len(index["attribute_names"])
    files = [str(Path(folder) / s["file"]) for s in index["shards"]]
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "name": tf.io.FixedLenFeature([], tf.string),
        "attributes": tf.io.FixedLenFeature([k], tf.int64),
        "held_out": tf.io.FixedLenFeature([], tf.int64),
    }
    ds = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec))
    if split != "all":
        wanted = 1 if split == "held-out" else 0
        ds = ds.filter(lambda e: tf.equal(e["held_out"], wanted))

    def decode(e):
        image = tf.numpy_function(lambda d, n: _decode(d, n, size, crop), [e["image"], e["name"]], tf.uint8)
        image.set_shape((size, size, 3))
        return image, tf.cast(e["attributes"], tf.int8), e["name"]

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def load_shards(folder: str | os.PathLike, size: int, split: str = "all", crop: str = "auto"):
    """All faces of a split, decoded: (names, images (N, size, size, 3) uint8, attributes (N, K) int8 or None,
    attribute names)."""
    import tensorflow as tf

    index = read_index(folder)
    names, images, attributes = [], [], []
    try:
        for image, attrs, name in shard_dataset(folder, size, split, crop).batch(256).as_numpy_iterator():
            names += [n.decode() for n in name]
            images.append(image)
            attributes.append(attrs)
    except tf.errors.InvalidArgumentError as exc:
        raise FacemathError(f"{folder}: {exc.message.splitlines()[0]}") from None
    except tf.errors.DataLossError:
        raise FacemathError(f"{folder}: a shard is truncated or corrupt") from None
    k = len(index["attribute_names"])
    images = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
    attributes = np.concatenate(attributes) if attributes else np.zeros((0, k), np.int8)
    return names, images, (attributes if k else None), tuple(index["attribute_names"])
