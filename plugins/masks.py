"""Built-in completion masks (Amos 2016's set, plus file masks). 1 marks a known pixel, 0 a pixel to fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemath_core import FacemathError, Mask, Param, hookimpl, read_image


def full(shape, rng, image_name):
    """Every pixel known: plain projection."""
    return np.ones(shape, np.float32)


def center(shape, rng, image_name, scale: float = 0.25):
    """A central square hole; `scale` is the width of the known border as a share of the side (Amos' 0.25
    leaves the middle half missing)."""
    if not 0 <= scale < 0.5:
        raise ValueError(f"scale {scale}: the known border is a share of the side in [0, 0.5)")
    mask = np.ones(shape, np.float32)
    h, w = shape
    top, left = int(h * float(scale)), int(w * float(scale))
    mask[top : h - top, left : w - left] = 0.0
    return mask


def _half(shape, side):
    mask = np.ones(shape, np.float32)
    h, w = shape
    region = {
        "left": np.s_[:, : w // 2],
        "right": np.s_[:, w // 2 :],
        "top": np.s_[: h // 2],
        "bottom": np.s_[h // 2 :],
    }
    mask[region[side]] = 0.0
    return mask


def left(shape, rng, image_name):
    """The left half missing."""
    return _half(shape, "left")


def right(shape, rng, image_name):
    """The right half missing."""
    return _half(shape, "right")


def top(shape, rng, image_name):
    """The top half missing."""
    return _half(shape, "top")


def bottom(shape, rng, image_name):
    """The bottom half missing."""
    return _half(shape, "bottom")


def random(shape, rng, image_name, fraction: float = 0.2):
    """Each pixel missing with probability `fraction`, drawn from the run's seeded generator."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction {fraction}: a probability in [0, 1]")
    return (rng.random(shape) >= float(fraction)).astype(np.float32)


def grid(shape, rng, image_name, step: int = 4):
    """Only every `step`-th pixel in each direction known."""
    if step < 1:
        raise ValueError(f"step {step}: at least 1 (every step-th pixel is known)")
    mask = np.zeros(shape, np.float32)
    mask[:: int(step), :: int(step)] = 1.0
    return mask


def lowres(shape, rng, image_name):
    """No pixel known exactly: use with the lowres loss term, which matches block averages (super-resolution)."""
    return np.zeros(shape, np.float32)


def from_file(shape, rng, image_name, dir: str = "masks"):
    """One mask PNG per image, found as DIR/<image stem>.png: white (>= 128) known, black missing."""
    folder = Path(dir)
    path = folder / f"{Path(image_name).stem}.png"
    if not path.exists():
        raise FacemathError(f"mask file {path} for image {image_name} does not exist")
    mask = read_image(path).mean(axis=2) >= 128
    if mask.shape != tuple(shape):
        raise FacemathError(f"mask file {path} is {mask.shape[1]}x{mask.shape[0]}, the image is {shape[1]}x{shape[0]}")
    return mask.astype(np.float32)


@hookimpl
def facemath_masks():
    return [
        Mask("full", "Every pixel known (plain projection).", full),
        Mask(
            "center",
            "Central square hole; scale = known border share.",
            center,
            {"scale": Param(0.25, ge=0, lt=0.5, help="Width of the known border, as a share of the side.")},
        ),
        Mask("left", "Left half missing.", left),
        Mask("right", "Right half missing.", right),
        Mask("top", "Top half missing.", top),
        Mask("bottom", "Bottom half missing.", bottom),
        Mask(
            "random",
            "Each pixel missing with probability fraction (seeded).",
            random,
            {"fraction": Param(0.2, ge=0, le=1, help="Probability that a pixel is missing.")},
        ),
        Mask("grid", "Only every step-th pixel known.", grid, {"step": Param(4, ge=1, help="Known pixel spacing.")}),
        Mask("lowres", "No exact pixel known; pair with the lowres loss.", lowres),
        Mask(
            "file",
            "One mask PNG per image, DIR/<stem>.png, white = known.",
            from_file,
            {"dir": Param("masks", help="Folder of one PNG per image, named like the image.")},
        ),
    ]
