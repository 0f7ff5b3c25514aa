"""Face folders in CelebA's format, their train/held-out split, and the tf.data pipeline that feeds training.

One loader reads three layouts:
- real CelebA: `img_align_celeba/` + `list_attr_celeba.txt` (+ `list_eval_partition.txt`);
- facemath's synthetic faces, written in exactly that layout (plus `list_factors_synth.txt`);
- a plain folder of images without any attribute file.
"""

from __future__ import annotations

import json
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError, describe_os_error
from facemath_core.base.files import atomic_file
from facemath_core.base.text import plural, shown
from facemath_core.data.images import list_images, load_images

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
FACTORS_FILE = "list_factors_synth.txt"
IMAGE_DIR = "img_align_celeba"
RECIPE_FILE = "synth_recipe.json"  # how `facemath data synth` made the folder: its parameters
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


def read_label_lines(path: Path) -> list[str]:
    """The lines of a label file (attributes, partition, factors): a regular file of UTF-8 text, or one line saying
    why not (a named pipe would block the read forever; other encodings are refused, not guessed)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise FacemathError(f"{shown(path)}: not a regular file")
        data = path.read_bytes()
    except OSError as exc:
        raise FacemathError(describe_os_error(exc, shown(path))) from None
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FacemathError(
            f"{shown(path)}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); label files are UTF-8"
        ) from None


def listed_name(name: str, path: Path, line: int) -> str:
    """A file name from a label file, refused unless it names a file inside the face folder: no absolute path, no
    `..` that climbs out of it (a label file from elsewhere must not make facemath read or pack other files)."""
    normal = os.path.normpath(name)
    if os.path.isabs(name) or normal == ".." or normal.startswith("../") or "\0" in name:
        raise FacemathError(
            f"{shown(path)}:{line}: {shown(name)!r} is outside the face folder; label files name the folder's "
            f"own images"
        )
    return name


def read_attribute_file(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse a list_attr_celeba.txt-format file: count line, names line, then `filename v1 v2 ...` rows."""
    lines = read_label_lines(path)
    if len(lines) < 2:
        raise FacemathError(f"{path}: expected a count line and a names line")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise FacemathError(f"{path}:1: expected the number of images, got {lines[0].strip()!r}") from None
    names = lines[1].split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise FacemathError(
            f"{path}: the first line says {plural(count, 'image')} but there are {plural(len(rows), 'row')}"
        )
    files, values = [], np.zeros((count, len(names)), np.int8)
    for i, row in enumerate(rows):
        if len(row) != len(names) + 1:
            raise FacemathError(f"{path}:{i + 3}: expected a file name and {len(names)} values, got {len(row)} fields")
        files.append(listed_name(row[0], path, i + 3))
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
    # fsencode: the name's bytes on disk, also for a name that is not UTF-8 (UTF-8 names hash as they always did).
    return np.array([zlib.crc32(os.fsencode(n)) % 100 < HELD_OUT_PERCENT for n in names], bool)


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
        missing = [shown(p) for p in paths if not p.exists()]
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
        for number, line in enumerate(read_label_lines(partition_path), 1):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise FacemathError(f"{partition_path}:{number}: expected 'filename 0|1|2'")
            # CelebA: 0 train, 1 validation, 2 test
            partition[listed_name(fields[0], partition_path, number)] = fields[1] != "0"
        held_out = np.array([partition.get(f, h) for f, h in zip(files, held_out, strict=True)], bool)
    return FaceFolder(root, tuple(paths), tuple(names), values, held_out)


def read_factors(folder: FaceFolder) -> tuple[list[str], np.ndarray] | None:
    """The continuous factors that synthetic faces record (yaw, skin tone, ...), or None for other folders."""
    path = folder.root / FACTORS_FILE
    if not path.exists():
        return None
    lines = read_label_lines(path)
    names = lines[1].split()
    table = {row.split()[0]: [float(v) for v in row.split()[1:]] for row in lines[2:] if row.strip()}
    return names, np.array([table[p.name] for p in folder.paths], np.float32)


def read_recipe(folder: str | os.PathLike) -> dict | None:
    """The recipe `data synth` recorded in a face folder (its parameters), or None: a folder made otherwise, or a
    recipe that cannot be read (it is provenance, never needed to use the faces)."""
    path = Path(folder) / RECIPE_FILE
    try:
        recipe = json.loads("\n".join(read_label_lines(path)))
    except (FacemathError, ValueError, RecursionError):
        return None
    return recipe if isinstance(recipe, dict) and recipe.get("command") == "facemath data synth" else None


def recipe_command(recipe: dict, out: str) -> str:
    """The `facemath data synth` command line of a recipe, writing `--out out`: the count and seed, then each
    option that differs from its default, in the order `data synth -h` lists them."""
    words = ["facemath", "data", "synth", "--count", str(recipe.get("count")), "--seed", str(recipe.get("seed"))]
    if recipe.get("size", 64) != 64:
        words += ["--size", str(recipe["size"])]
    for name, value in (recipe.get("freq") or {}).items():
        words += ["--freq", f"{name}={value:g}"]
    for pair, value in (recipe.get("correlate") or {}).items():
        words += ["--correlate", f"{pair}={value:g}"]
    if recipe.get("held_out_percent", HELD_OUT_PERCENT) != HELD_OUT_PERCENT:
        words += ["--held-out-percent", str(recipe["held_out_percent"])]
    if recipe.get("flat"):
        words.append("--flat")
    return " ".join([*words, "--out", out])


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
                raise FacemathError(f"{shown(path)}: folder has no images")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise FacemathError(f"{shown(path)}: no such file or folder")
    if not paths:
        raise FacemathError("no images given")
    return paths
