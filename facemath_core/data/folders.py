"""Face folders in CelebA's format, their train/held-out split, and the tf.data pipeline that feeds training.

One loader reads three layouts:
- real CelebA: `img_align_celeba/` + `list_attr_celeba.txt` (+ `list_eval_partition.txt`);
- facemath's synthetic faces, written in exactly that layout (plus `list_factors_synth.txt`);
- a plain folder of images without any attribute file.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_file
from facemath_core.data.images import list_images, load_images

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
FACTORS_FILE = "list_factors_synth.txt"
IMAGE_DIR = "img_align_celeba"
HELD_OUT_PERCENT = 10  # for folders without a partition file


@dataclass(frozen=True)
class FaceFolder:
    """The images of a face folder, with their attributes when the folder has an attribute file."""

    root: Path
    paths: tuple[Path, ...]
    attribute_names: tuple[str, ...]  # empty without an attribute file
    attributes: np.ndarray | None  # (N, K) int8 of +1 / -1, CelebA's coding
    held_out: np.ndarray  # (N,) bool

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.paths]

    def split(self, part: str) -> FaceFolder:
        """'train', 'held-out' or 'all'."""
        if part == "all":
            return self
        if part not in ("train", "held-out"):
            raise FacemathError(f"--split {part!r}: choose train, held-out or all")
        keep = self.held_out if part == "held-out" else ~self.held_out
        return FaceFolder(
            self.root,
            tuple(p for p, k in zip(self.paths, keep, strict=True) if k),
            self.attribute_names,
            None if self.attributes is None else self.attributes[keep],
            self.held_out[keep],
        )

    def attribute(self, name: str) -> np.ndarray:
        """One attribute as a bool array, or a clear error when the folder has no such attribute."""
        if self.attributes is None:
            raise FacemathError(f"{self.root}: has no {ATTR_FILE}, so attribute {name!r} is unknown")
        if name not in self.attribute_names:
            raise FacemathError(
                f"{self.root / ATTR_FILE}: no attribute {name!r}; known: {', '.join(self.attribute_names)}"
            )
        return self.attributes[:, self.attribute_names.index(name)] > 0


def read_attribute_file(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse a list_attr_celeba.txt-format file: count line, names line, then `filename v1 v2 ...` rows."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FacemathError(f"{path}: cannot read ({exc})") from None
    if len(lines) < 2:
        raise FacemathError(f"{path}: expected a count line and a names line")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise FacemathError(f"{path}:1: expected the number of images, got {lines[0].strip()!r}") from None
    names = lines[1].split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise FacemathError(f"{path}: the first line says {count} images but there are {len(rows)} rows")
    files, values = [], np.zeros((count, len(names)), np.int8)
    for i, row in enumerate(rows):
        if len(row) != len(names) + 1:
            raise FacemathError(f"{path}:{i + 3}: expected a file name and {len(names)} values, got {len(row)} fields")
        files.append(row[0])
        try:
            values[i] = [int(v) for v in row[1:]]
        except ValueError:
            raise FacemathError(f"{path}:{i + 3}: attribute values must be 1 or -1") from None
        if not np.all(np.abs(values[i]) == 1):
            raise FacemathError(f"{path}:{i + 3}: attribute values must be 1 or -1")
    return files, names, values


def write_attribute_file(path: Path, files: list[str], names: list[str], values: np.ndarray, fmt: str = "{:2d}"):
    """Write rows in CelebA's layout (numbers right-aligned, two spaces after the file name)."""
    with atomic_file(path, "w") as handle:
        handle.write(f"{len(files)}\n")
        handle.write(" ".join(names) + " \n")
        for name, row in zip(files, values, strict=True):
            handle.write(name + "  " + " ".join(fmt.format(v) for v in row) + "\n")


def _hashed_held_out(names: list[str]) -> np.ndarray:
    # A stable hash of the file name: the same face is on the same side whatever else is in the folder.
    return np.array([zlib.crc32(n.encode()) % 100 < HELD_OUT_PERCENT for n in names], bool)


def open_faces(folder: str | os.PathLike) -> FaceFolder:
    """Open a face folder in any of the three layouts (see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise FacemathError(f"{root}: no such folder")
    image_dir = root / IMAGE_DIR if (root / IMAGE_DIR).is_dir() else root
    attr_path = root / ATTR_FILE
    if attr_path.exists():
        files, names, values = read_attribute_file(attr_path)
        paths = [image_dir / f for f in files]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FacemathError(f"{attr_path}: {len(missing)} listed images do not exist, e.g. {missing[0]}")
    else:
        paths, names, values = list_images(image_dir), [], None
        files = [p.name for p in paths]
    if not paths:
        raise FacemathError(f"{root}: no images found")
    held_out = _hashed_held_out(files)
    partition_path = root / PARTITION_FILE
    if partition_path.exists():
        partition = {}
        for number, line in enumerate(partition_path.read_text().splitlines(), 1):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise FacemathError(f"{partition_path}:{number}: expected 'filename 0|1|2'")
            partition[fields[0]] = fields[1] != "0"  # CelebA: 0 train, 1 validation, 2 test
        held_out = np.array([partition.get(f, h) for f, h in zip(files, held_out, strict=True)], bool)
    return FaceFolder(root, tuple(paths), tuple(names), values, held_out)


def read_factors(folder: FaceFolder) -> tuple[list[str], np.ndarray] | None:
    """The continuous factors that synthetic faces record (yaw, skin tone, ...), or None for other folders."""
    path = folder.root / FACTORS_FILE
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    names = lines[1].split()
    table = {row.split()[0]: [float(v) for v in row.split()[1:]] for row in lines[2:] if row.strip()}
    return names, np.array([table[p.name] for p in folder.paths], np.float32)


def load_folder_images(folder: FaceFolder, size: int, crop: str = "auto") -> np.ndarray:
    """All images of a face folder, decoded, cropped and resized: (N, size, size, 3) uint8."""
    return load_images(folder.paths, size, crop)


def collect_image_paths(arguments: list[str]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted); a missing path is an error."""
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir() and (path / IMAGE_DIR).is_dir():
            path = path / IMAGE_DIR  # a CelebA-layout folder (img_align_celeba/ + list_attr_celeba.txt)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise FacemathError(f"{path}: folder has no images")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise FacemathError(f"{path}: no such file or folder")
    if not paths:
        raise FacemathError("no images given")
    return paths
