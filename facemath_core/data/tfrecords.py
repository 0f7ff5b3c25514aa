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
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError, describe_os_error
from facemath_core.base.files import atomic_dir
from facemath_core.base.text import shown
from facemath_core.data.folders import open_faces, read_label_lines, read_recipe
from facemath_core.data.images import BadImagesError, check_image_file, crop_and_resize, decode_image

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
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[os.fsencode(name)])),  # its bytes on disk
        "attributes": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in attributes])),
        "held_out": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(held_out)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def pack_folder(folder: str | os.PathLike, out: str | os.PathLike, shard_size: int = DEFAULT_SHARD_SIZE) -> dict:
    """Write every face of `folder` into TFRecord shards under `out` (published whole); returns the index.

    Every image is decoded before it is packed, as `data info` checks a folder: a file that is not an image, or
    not a regular file (a named pipe would block the read), is refused with all the others in one line, and
    nothing is written."""
    import tensorflow as tf

    if shard_size < 1:
        raise FacemathError(f"--shard-size {shard_size}: must be at least 1")
    faces = open_faces(folder)
    total = len(faces.paths)
    count = -(-total // shard_size)
    no_attributes = np.zeros((total, 0), np.int8)
    attributes = faces.attributes if faces.attributes is not None else no_attributes
    shards, problems = [], []
    with atomic_dir(out) as tmp, ThreadPoolExecutor(max_workers=4) as pool:
        for k in range(count):
            name = f"shard-{k:05d}-of-{count:05d}.tfrecord"
            rows = range(k * shard_size, min(total, (k + 1) * shard_size))
            checked = pool.map(_checked_bytes, [faces.paths[i] for i in rows])  # read and decoded 4 at a time
            with tf.io.TFRecordWriter(str(tmp / name)) as writer:
                for i, (data, problem) in zip(rows, checked, strict=True):
                    if problem:
                        problems.append(problem)
                    elif not problems:  # after a bad file nothing more is written: it will all be discarded
                        writer.write(_example(data, faces.paths[i].name, attributes[i], faces.held_out[i]))
            shards.append({"file": name, "count": len(rows)})
        if problems:
            raise BadImagesError(problems, total)
        index = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "count": total,
            "held_out": int(faces.held_out.sum()),
            "attribute_names": list(faces.attribute_names),
            "shards": shards,
            "source": str(Path(folder).resolve()),
        }
        recipe = read_recipe(faces.root)
        if recipe is not None:
            index["recipe"] = recipe  # a model card names the recipe of the faces its shards came from
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return index


def _checked_bytes(path: Path) -> tuple[bytes | None, str | None]:
    """A face file's bytes, as they are on disk, once they are known to decode: (bytes, None) or (None, problem)."""
    try:
        check_image_file(path)
        data = path.read_bytes()
        decode_image(io.BytesIO(data), shown(path))
        return data, None
    except OSError as exc:
        return None, describe_os_error(exc, shown(path))
    except FacemathError as exc:
        return None, str(exc)


def _index_problem(path: Path, index) -> str | None:
    """What is wrong with a parsed shards.json, or None (every field `shard_dataset` and `load_shards` use)."""
    if not isinstance(index, dict):
        return f"expected a JSON object, not {type(index).__name__}"
    if index.get("format") != FORMAT or index.get("version") != FORMAT_VERSION:
        return f"not a facemath shard index (format {FORMAT} version {FORMAT_VERSION})"
    shards, names = index.get("shards"), index.get("attribute_names", [])
    if not isinstance(shards, list) or not shards:
        return '\'shards\' must be a non-empty list of {"file": ..., "count": ...}'
    for i, shard in enumerate(shards):
        file = shard.get("file") if isinstance(shard, dict) else None
        if not isinstance(file, str) or not file or file != Path(file).name or file in (".", ".."):
            return f"shards[{i}]: 'file' must be the name of a file in this folder, got {json.dumps(file)}"
        if not _whole(shard.get("count")) or shard["count"] < 0:
            return f"shards[{i}]: 'count' must be a whole number >= 0, got {json.dumps(shard.get('count'))}"
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        return f"'attribute_names' must be a list of names, got {json.dumps(names)}"
    if not _whole(index.get("count")) or index["count"] != sum(s["count"] for s in shards):
        return f"'count' {json.dumps(index.get('count'))} is not the sum of the shards' counts"
    return None


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_index(folder: str | os.PathLike) -> dict:
    path = Path(folder) / INDEX_FILE
    try:
        index = json.loads("\n".join(read_label_lines(path)))
    except (ValueError, RecursionError) as exc:
        raise FacemathError(f"{path}: cannot read the shard index ({_one_line(exc)})") from None
    problem = _index_problem(path, index)
    if problem:
        raise FacemathError(f"{path}: {problem}")
    missing = [s["file"] for s in index["shards"] if not (Path(folder) / s["file"]).is_file()]
    if missing:
        raise FacemathError(f"{Path(folder) / missing[0]}: shard listed in {INDEX_FILE} is missing")
    return index


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _decode(data: bytes, name: bytes, size: int, crop: str) -> np.ndarray:
    """One record's image through the folder loader's own steps (PIL decode, RGB, crop, LANCZOS resize)."""
    return crop_and_resize(decode_image(io.BytesIO(data), shown(os.fsdecode(name))), size, crop)


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


def _record_problem(exc) -> str:
    """The reason a record could not be read, from TensorFlow's error: a record whose image does not decode comes
    back from the decoding py_function as `UnknownError: ... FacemathError: NAME: reason`; a record that is not a
    face record as `InvalidArgumentError: {{function_node ...}} Error in user-defined function passed to ... with
    iterator: ...: Feature: image (data type: string) is required ...` (the part after the pipeline's name kept)."""
    lines = [line.strip() for line in exc.message.splitlines() if line.strip()]
    for line in reversed(lines):
        if "FacemathError: " in line:
            return "a record's image " + line.split("FacemathError: ", 1)[1]
    reason = re.sub(r"^\{\{[^}]*\}\}\s*", "", lines[0] if lines else type(exc).__name__)
    reason = re.sub(r"^Error in user-defined function .*? with iterator: \S+: ", "", reason)
    reason = reason if len(reason) <= 120 else reason[:117] + "..."
    return f"a record is not a face record as `facemath data pack` writes them ({reason})"


def load_shards(folder: str | os.PathLike, size: int, split: str = "all", crop: str = "auto"):
    """All faces of a split, decoded: (names, images (N, size, size, 3) uint8, attributes (N, K) int8 or None,
    attribute names)."""
    import tensorflow as tf

    index = read_index(folder)
    names, images, attributes = [], [], []
    try:
        for image, attrs, name in shard_dataset(folder, size, split, crop).batch(256).as_numpy_iterator():
            names += [os.fsdecode(n) for n in name]
            images.append(image)
            attributes.append(attrs)
    except tf.errors.DataLossError:
        raise FacemathError(f"{folder}: a shard is truncated or corrupt") from None
    except tf.errors.OpError as exc:
        raise FacemathError(f"{folder}: {_record_problem(exc)}") from None
    k = len(index["attribute_names"])
    images = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
    attributes = np.concatenate(attributes) if attributes else np.zeros((0, k), np.int8)
    return names, images, (attributes if k else None), tuple(index["attribute_names"])
