"""Reading and writing images: any common input becomes RGB uint8, upright (its EXIF orientation applied), and
every failure names its file."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from facemath_core.base.errors import FacemathError, describe_os_error
from facemath_core.base.files import atomic_file
from facemath_core.base.text import shown

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Far above any face crop, far below what would exhaust memory: a decompression bomb is refused, not decoded.
MAX_PIXELS = 40_000_000
# CelebA's aligned faces are 178x218; DCGAN practice crops their central 108x108 before resizing.
CELEBA_ALIGNED_SIZE = (178, 218)
CELEBA_CROP = 108

ImageFile.LOAD_TRUNCATED_IMAGES = False


class BadImagesError(FacemathError):
    """Several files of a folder scan could not be read; `problems` holds one 'file: reason' line each."""

    def __init__(self, problems: list[str], total: int):
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"{len(problems)} of {total} images could not be read: {shown}")


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Greyscale, palette, alpha, 16-bit and CMYK images all become 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent areas become white, as a browser shows them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image as an (H, W, 3) uint8 RGB array, or raise FacemathError naming the file and the reason."""
    path = Path(path)
    try:
        check_image_file(path)
    except OSError as exc:
        raise _os_problem(exc, shown(path)) from None
    return decode_image(path, shown(path))


def check_image_file(path: Path) -> None:
    """Refuse what is not a regular, non-empty file before anything opens it: a named pipe would block the read
    forever and a device would never end, so only regular files are read (a folder named like an image too)."""
    info = path.stat()
    if stat.S_ISDIR(info.st_mode):
        raise FacemathError(f"{shown(path)}: is a folder, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise FacemathError(f"{shown(path)}: not a regular file ({_file_type(info.st_mode)})")
    if info.st_size == 0:
        raise FacemathError(f"{shown(path)}: empty file")


def _os_problem(exc: OSError, name: str) -> FacemathError:
    if isinstance(exc, FileNotFoundError):
        return FacemathError(f"{name}: no such file")
    return FacemathError(describe_os_error(exc, name))  # the file system's reason (a link loop, EACCES)


def decode_image(source, name: str) -> np.ndarray:
    """An image file (a path or a binary file object) decoded to (H, W, 3) uint8 RGB, with the pixel limit; every
    failure is a FacemathError saying `name: reason`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with Image.open(source) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise FacemathError(
                        f"{name}: {image.width}x{image.height} pixels is over the {MAX_PIXELS:,} pixel limit"
                    )
                image.load()
                return _to_rgb(upright(image))
    except FacemathError:
        raise
    except FileNotFoundError:
        raise FacemathError(f"{name}: no such file") from None
    except UnidentifiedImageError:
        raise FacemathError(f"{name}: not an image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FacemathError(f"{name}: over the {MAX_PIXELS:,} pixel limit (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise _os_problem(exc, name) from None
        reason = "truncated" if "truncated" in str(exc).lower() else f"cannot decode ({exc})"
        raise FacemathError(f"{name}: {reason}") from None


EXIF_ORIENTATION = 0x0112  # the EXIF tag a camera sets when it stores the picture turned or mirrored


def upright(image: Image.Image) -> Image.Image:
    """The image as the camera meant it: EXIF orientations 2-8 (turned, mirrored, both) undone with Pillow's
    `ImageOps.exif_transpose`, so a phone photo held upright is read upright everywhere. Orientation 1 (or none)
    is returned as it is, without a copy."""
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: read the pixels as stored
        return image
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return image
    return ImageOps.exif_transpose(image)


def _file_type(mode: int) -> str:
    for test, what in (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return what
    return "not a file"


def crop_and_resize(rgb: np.ndarray, size: int, crop: str = "auto") -> np.ndarray:
    """Crop the face region and resize to size x size.

    crop 'auto' takes CelebA's central 108x108 for 178x218 aligned images and the largest central square otherwise;
    'celeba' always takes 108x108; 'none' resizes the whole image (squashing it if it is not square).
    """
    height, width = rgb.shape[:2]
    if crop == "celeba" or (crop == "auto" and (width, height) == CELEBA_ALIGNED_SIZE):
        side = min(CELEBA_CROP, width, height)
    elif crop in ("auto", "square"):
        side = min(width, height)
    elif crop == "none":
        side = None
    else:
        raise FacemathError(f"--crop {crop!r}: choose auto, celeba, square or none")
    if side is not None:
        top, left = (height - side) // 2, (width - side) // 2
        rgb = rgb[top : top + side, left : left + side]
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in `folder`, sorted by name. Hidden files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacemathError(f"{shown(folder)}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def load_images(paths: Iterable[Path], size: int, crop: str = "auto", workers: int = 4) -> np.ndarray:
    """Read, crop and resize many images into one (N, size, size, 3) uint8 array.

    Every file is tried; if any fail, one BadImagesError lists them all instead of stopping at the first.
    """
    paths = list(paths)

    def one(path: Path):
        try:
            return crop_and_resize(read_image(path), size, crop), None
        except FacemathError as exc:
            return None, str(exc)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, paths))
    problems = [problem for _, problem in results if problem]
    if problems:
        raise BadImagesError(problems, len(paths))
    if not results:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([image for image, _ in results])


def save_png(path: str | os.PathLike, rgb: np.ndarray, compress_level: int = 6) -> None:
    """Write an RGB uint8 (or [0, 1] float) array as PNG, atomically."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    with atomic_file(path) as handle:
        Image.fromarray(rgb).save(handle, format="PNG", compress_level=compress_level)


def image_grid(images: np.ndarray, columns: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one picture, row by row, with `pad` pixels between them."""
    if columns < 1:
        raise FacemathError(f"{columns} columns: a grid needs at least 1")
    count, height, width = images.shape[:3]
    rows = max(1, -(-count // columns))
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), fill, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid


def to_unit(images_uint8):
    """uint8 [0, 255] -> float32 [-1, 1], the models' value range; a numpy array or a TensorFlow tensor (the
    training pipeline converts each batch as it goes)."""
    if isinstance(images_uint8, np.ndarray):
        return images_uint8.astype(np.float32) / 127.5 - 1.0
    import tensorflow as tf

    return tf.cast(images_uint8, tf.float32) / 127.5 - 1.0


def from_unit(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255]."""
    return (np.clip((np.asarray(images) + 1.0) * 127.5, 0, 255) + 0.5).astype(np.uint8)
