"""The things plugins provide: loss terms, optimizers, latent operators, masks, blenders, z initialisers and z
constraints.

Each is a small frozen dataclass with a name, a one-line help text, a pure function and its default parameters, so
that the core can list, validate and document all of them the same way. Plugins return lists of these from the
hooks in `facemath_core.host.hookspecs`; the plugin manager fills in `provider` (who supplied the component) so that
every error about a component can name it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, repr=False)
class Component:
    name: str
    help: str
    function: Callable[..., Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # "facemath 0.1.0", "my-plugin 1.2" or "--plugin FILE": set by the plugin manager, not by the plugin.
    provider: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or any(c.isspace() or c in "=,." for c in self.name):
            raise ValueError(f"component name {self.name!r} must be non-empty without spaces, '=', ',' or '.'")
        if not callable(self.function):
            raise ValueError(f"component {self.name!r}: function {self.function!r} is not callable")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def __repr__(self) -> str:  # short: `--trace-plugins` prints every hook's results
        return f"{type(self).__name__}({self.name!r}{', ' + self.provider if self.provider else ''})"

    @property
    def kind(self) -> str:
        return KIND_OF_CLASS[type(self)]

    @property
    def label(self) -> str:
        """How errors name it: `loss 'tv' (facemath-tv-loss 1.0.0)`."""
        return f"{self.kind} {self.name!r} ({self.provider or 'provider unknown'})"

    def describe(self) -> dict[str, Any]:
        """Every field a user choosing the component needs, as plain data (for `facemath plugins --json`)."""
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "help": self.help}
        out["params"] = {key: _plain(value) for key, value in self.defaults.items()}
        for f in fields(self):
            if f.name not in ("name", "help", "function", "defaults", "provider", "to_z", "from_z"):
                out[f.name] = _plain(getattr(self, f.name))
        if isinstance(self, Constraint):
            out["reparametrises"] = self.to_z is not None
        out["provider"] = self.provider
        return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, repr=False)
class LossTerm(Component):
    """A term of the projection objective.

    `function(target, generated, mask, disc_logits, **params)` gets float32 tensors: target and generated images
    (B, H, W, 3) in [-1, 1], the mask (B, H, W, 1) with 1 on known pixels, and the discriminator's logits on the
    generated images (B,) (None unless `needs_discriminator`). It runs inside the step's `tf.function`, so it must
    use TensorFlow ops (no `.numpy()`). It returns one float value per image, shape (B,), and must be
    differentiable with respect to `generated` and `disc_logits`. `default_weight` is the term's weight when the
    user names it without one.

    A term with `needs_encoder` is also given, as keywords, `z` (B, D), the latent being optimised, and `encoded`
    (B, D), the encoder of the model projected onto applied to the generated images, E(G(z)); it must be
    differentiable with respect to them (the in-domain term, Zhu et al. 2020).
    """

    needs_discriminator: bool = False
    default_weight: float = 1.0
    needs_encoder: bool = False


@dataclass(frozen=True, repr=False)
class Optimizer(Component):
    """A way of updating z: `function(**params)` returns a Keras 3 optimizer (or an object with its
    `apply_gradients` / `build` / `variables` API). It is called once per batch of images."""


@dataclass(frozen=True, repr=False)
class Operator(Component):
    """A function of latent arithmetic: `function(*args, **defaults)` takes latent vectors (numpy arrays of shape
    (D,) or (N, D)) and plain numbers, and returns a latent vector. `arity` is the number of positional
    arguments, or None for any; `defaults` are passed as keyword arguments."""

    arity: int | None = None


@dataclass(frozen=True, repr=False)
class Mask(Component):
    """Which pixels are known, for completion: `function(shape, rng, image_name, **params)` returns a float32
    array of `shape` (H, W) with values in [0, 1]: 1 on known pixels and 0 on the pixels to fill in."""


@dataclass(frozen=True, repr=False)
class Blender(Component):
    """Pastes a generated fill into an image: `function(target, generated, mask, **params)` takes float arrays
    (H, W, 3) in [-1, 1] and the mask (H, W) and returns the blended image (H, W, 3), finite."""


@dataclass(frozen=True, repr=False)
class Initializer(Component):
    """Where the search for z starts: `function(targets, z_dim, bound, rng, backend, **params)` gets the target
    images (N, H, W, 3) in [-1, 1], the latent size, the prior's box half-width, the run's seeded numpy
    Generator and the backend, and returns float32 z of shape (N, z_dim) (clipped to the box by the core).
    `needs_models` names the exported models it uses (e.g. `attribute_oracle`), checked before any work.
    With `needs_encoder` it is also given `encode`, a function images -> z (numpy) running the encoder of the model
    projected onto (gan_encoder for the generator, vae_encoder for the VAE decoder), checked before any work to
    have been trained for that model and version."""

    needs_models: tuple[str, ...] = ()
    needs_encoder: bool = False


@dataclass(frozen=True, repr=False)
class Constraint(Component):
    """Keeps z inside the prior's box during the search.

    `function(variable, bound, generator, **params)` runs inside the step's `tf.function` after every optimizer
    update and returns the variable projected back (e.g. clipped); `generator` is the run's seeded
    `tf.random.Generator`. A reparametrising constraint also sets `to_z(variable, bound, **params)` (tensors: the
    optimised variable to z) and `from_z(z, bound, **params)` (numpy: the starting z to the variable); both are
    the identity when None.
    """

    to_z: Callable[..., Any] | None = None
    from_z: Callable[..., Any] | None = None


KIND_OF_CLASS: dict[type, str] = {
    LossTerm: "loss",
    Optimizer: "optimizer",
    Operator: "operator",
    Mask: "mask",
    Blender: "blender",
    Initializer: "init",
    Constraint: "constraint",
}
HOOK_OF_KIND = {
    "loss": "facemath_loss_terms",
    "optimizer": "facemath_optimizers",
    "operator": "facemath_operators",
    "mask": "facemath_masks",
    "blender": "facemath_blenders",
    "init": "facemath_initializers",
    "constraint": "facemath_constraints",
}
CLASS_OF_KIND = {kind: cls for cls, kind in KIND_OF_CLASS.items()}
# Names the core already gives a meaning: `mean` and `attr` are functions of the expression language
# (arithmetic.BUILTIN_FUNCTIONS), `total` is the key of the weighted sum beside the loss terms in latents.npz.
RESERVED_NAMES: dict[str, frozenset[str]] = {
    "operator": frozenset({"mean", "attr"}),
    "loss": frozenset({"total"}),
}
