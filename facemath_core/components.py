"""The things plugins provide: loss terms, optimizers, latent operators, masks and blenders.

Each is a small frozen dataclass with a name, a one-line help text, a pure function and its default parameters, so
that the core can list, validate and document all of them the same way. Plugins return lists of these from the
hooks in `facemath_core.hookspecs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Component:
    name: str
    help: str
    function: Callable[..., Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or any(c.isspace() or c in "=," for c in self.name):
            raise ValueError(f"component name {self.name!r} must be non-empty without spaces, '=' or ','")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def kind(self) -> str:
        return KIND_OF_CLASS[type(self)]


@dataclass(frozen=True)
class LossTerm(Component):
    """A term of the projection objective.

    `function(target, generated, mask, disc_logits, **params)` gets float32 tensors: target and generated images
    (B, H, W, 3) in [-1, 1], the mask (B, H, W, 1) with 1 on known pixels, and the discriminator's logits on the
    generated images (B,) (None unless `needs_discriminator`). It returns one loss value per image, shape (B,),
    and must be differentiable with respect to `generated` and `disc_logits`. `default_weight` is the term's
    weight when the user names it without one.
    """

    needs_discriminator: bool = False
    default_weight: float = 1.0


@dataclass(frozen=True)
class Optimizer(Component):
    """A way of updating z: `function(**params)` returns a Keras 3 optimizer (or an object with its
    `apply_gradients` / `build` / `variables` API)."""


@dataclass(frozen=True)
class Operator(Component):
    """A function of latent arithmetic: `function(*args)` takes latent vectors (numpy arrays of shape (D,) or
    (N, D)) and plain numbers, and returns a latent vector. `arity` is the number of arguments, or None for any."""

    arity: int | None = None


@dataclass(frozen=True)
class Mask(Component):
    """Which pixels are known, for completion: `function(shape, rng, image_name, **params)` returns a float32
    array of `shape` (H, W) with 1 on known pixels and 0 on the pixels to fill in."""


@dataclass(frozen=True)
class Blender(Component):
    """Pastes a generated fill into an image: `function(target, generated, mask, **params)` takes float arrays
    (H, W, 3) in [-1, 1] and the mask (H, W) and returns the blended image (H, W, 3)."""


KIND_OF_CLASS: dict[type, str] = {
    LossTerm: "loss",
    Optimizer: "optimizer",
    Operator: "operator",
    Mask: "mask",
    Blender: "blender",
}
HOOK_OF_KIND = {
    "loss": "facemath_loss_terms",
    "optimizer": "facemath_optimizers",
    "operator": "facemath_operators",
    "mask": "facemath_masks",
    "blender": "facemath_blenders",
}
