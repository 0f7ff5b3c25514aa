"""The things plugins provide: loss terms, optimizers, latent operators, masks, blenders, z initialisers, z
constraints, face detectors and samplers of z.

Each is a small frozen dataclass with a name, a one-line help text, a pure function and its parameters, so that the
core can list, validate and document all of them the same way. Plugins return lists of these from the hooks in
`facemath_core.host.hookspecs`; the plugin manager fills in `provider` (who supplied the component) so that every
error about a component can name it.

A kind of component is declared here, in one place: its class says its kind name, the hook that returns it and how
its function is called (`call`, `positional`); `COMPONENT_CLASSES` lists the classes. Registration, `facemath
plugins`, `--param`, the static checks and the documentation tests all follow from these (docs/plugins.md, "Adding a
kind of component").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from facemath_core.host.schema import Defaults, Param


class Provider(str):
    """Who provides a component, as errors show it ("facemath-tv-loss 1.0.0", "--plugin my_loss.py"), with the
    parts apart: the registered plugin name (entry point or `--plugin` spec), the distribution and its version."""

    plugin: str
    distribution: str | None
    version: str | None

    def __new__(cls, text: str, plugin: str = "", distribution: str | None = None, version: str | None = None):
        provider = super().__new__(cls, text)
        provider.plugin, provider.distribution, provider.version = plugin, distribution, version
        return provider

    def record(self) -> dict[str, str | None]:
        """As recorded in a result (latents.npz): plugin, distribution, version."""
        return {"plugin": self.plugin or None, "distribution": self.distribution, "version": self.version}


@dataclass(frozen=True, repr=False)
class Component:
    kind: ClassVar[str] = ""
    hook: ClassVar[str] = ""
    # How the core calls `function`: shown in errors, and `positional` arguments plus the parameters as keywords
    # is what the static check binds the function's signature to at registration.
    call: ClassVar[str] = "function(**params)"
    positional: ClassVar[int | None] = 0

    name: str
    help: str
    function: Callable[..., Any]
    # Parameter -> default value, or -> `Param(default, choices=..., ge=..., help=...)` to declare more; kept as a
    # `schema.Defaults`: `defaults[key]` is the default value, `schema[key]` the Param.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # "facemath 0.1.0", "my-plugin 1.2" or "--plugin FILE": set by the plugin manager, not by the plugin.
    provider: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or any(c.isspace() or c in "=,." for c in self.name):
            raise ValueError(f"component name {self.name!r} must be non-empty without spaces, '=', ',' or '.'")
        if not callable(self.function):
            raise ValueError(f"component {self.name!r}: function {self.function!r} is not callable")
        if not isinstance(self.defaults, Mapping):
            raise ValueError(f"component {self.name!r}: defaults must be a dict of parameter -> default")
        object.__setattr__(self, "defaults", Defaults(self.defaults))

    def __repr__(self) -> str:  # short: `--trace-plugins` prints every hook's results
        return f"{type(self).__name__}({self.name!r}{', ' + self.provider if self.provider else ''})"

    @property
    def schema(self) -> Mapping[str, Param]:
        """Each parameter's declared `Param` (type, choices, range, help)."""
        return self.defaults.schema

    @property
    def label(self) -> str:
        """How errors name it: `loss 'tv' (facemath-tv-loss 1.0.0)`."""
        return f"{self.kind} {self.name!r} ({self.provider or 'provider unknown'})"

    def keywords(self) -> dict[str, Any]:
        """Keywords the core passes besides the parameters (e.g. a loss term's `z` and `encoded`), as the static
        check binds them."""
        return {}

    def record(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What a result (latents.npz) records of the component it used: kind, name, the parameters it ran with,
        and its provider with plugin, distribution and version."""
        provider = self.provider if isinstance(self.provider, Provider) else Provider(str(self.provider))
        values = dict(self.defaults) if params is None else dict(params)
        return {"kind": self.kind, "name": self.name, "params": values, "provider": str(provider), **provider.record()}

    def describe(self) -> dict[str, Any]:
        """Every field a user choosing the component needs, as plain data (for `facemath plugins --json`):
        `params` the defaults, `schema` each parameter's type, choices, range and help."""
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "help": self.help}
        out["params"] = {key: _plain(value) for key, value in self.defaults.items()}
        out["schema"] = {key: param.describe() for key, param in self.schema.items()}
        for f in fields(self):
            if f.name not in ("name", "help", "function", "defaults", "provider", "to_z", "from_z"):
                out[f.name] = _plain(getattr(self, f.name))
        if isinstance(self, Constraint):
            out["reparametrises"] = self.to_z is not None
        out["provider"] = str(self.provider)
        out["version"] = getattr(self.provider, "version", None)
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

    kind: ClassVar[str] = "loss"
    hook: ClassVar[str] = "facemath_loss_terms"
    call: ClassVar[str] = "function(target, generated, mask, disc_logits, **params)"
    positional: ClassVar[int | None] = 4

    needs_discriminator: bool = False
    default_weight: float = 1.0
    needs_encoder: bool = False

    def keywords(self) -> dict[str, Any]:
        return {"z": None, "encoded": None} if self.needs_encoder else {}


@dataclass(frozen=True, repr=False)
class Optimizer(Component):
    """A way of updating z: `function(**params)` returns a Keras 3 optimizer (or an object with its
    `apply_gradients` / `build` / `variables` API). It is called once before the first step, to check it, and then
    once per batch shape (its variables are reset for each batch of that shape)."""

    kind: ClassVar[str] = "optimizer"
    hook: ClassVar[str] = "facemath_optimizers"
    call: ClassVar[str] = "function(**params)"
    positional: ClassVar[int | None] = 0


@dataclass(frozen=True, repr=False)
class Operator(Component):
    """A function of latent arithmetic: `function(*args, **params)` takes latent vectors (numpy arrays of shape
    (D,) or (N, D)) and plain numbers, and returns a latent vector. `arity` is the number of positional
    arguments, or None for any; the parameters (`defaults`, or `--param NAME.KEY=VALUE`) are passed as keyword
    arguments."""

    kind: ClassVar[str] = "operator"
    hook: ClassVar[str] = "facemath_operators"
    call: ClassVar[str] = "function(*args, **params)"
    positional: ClassVar[int | None] = None  # the arity, checked per component

    arity: int | None = None


@dataclass(frozen=True, repr=False)
class Mask(Component):
    """Which pixels are known, for completion: `function(shape, rng, image_name, **params)` returns a float32
    array of `shape` (H, W) with values in [0, 1]: 1 on known pixels and 0 on the pixels to fill in."""

    kind: ClassVar[str] = "mask"
    hook: ClassVar[str] = "facemath_masks"
    call: ClassVar[str] = "function(shape, rng, image_name, **params)"
    positional: ClassVar[int | None] = 3


@dataclass(frozen=True, repr=False)
class Blender(Component):
    """Pastes a generated fill into an image: `function(target, generated, mask, **params)` takes float arrays
    (H, W, 3) in [-1, 1] and the mask (H, W) and returns the blended image (H, W, 3), finite."""

    kind: ClassVar[str] = "blender"
    hook: ClassVar[str] = "facemath_blenders"
    call: ClassVar[str] = "function(target, generated, mask, **params)"
    positional: ClassVar[int | None] = 3


@dataclass(frozen=True, repr=False)
class Initializer(Component):
    """Where the search for z starts: `function(targets, z_dim, bound, rng, backend, **params)` gets the target
    images (N, H, W, 3) in [-1, 1], the latent size, the prior's box half-width, the run's seeded numpy
    Generator and the backend, and returns float32 z of shape (N, z_dim) (clipped to the box by the core). It is
    called once per image (N = 1) and restart.
    `needs_models` names the exported models it uses (e.g. `attribute_oracle`), checked before any work.
    With `needs_encoder` it is also given `encode`, a function images -> z (numpy) running the encoder of the model
    projected onto (gan_encoder for the generator, vae_encoder for the VAE decoder), checked before any work to
    have been trained for that model and version. A function with a parameter called `decoder` is given the name of
    the model projected onto (`generator` or `vae_decoder`): `backend.generate(z, decoder)` renders a candidate."""

    kind: ClassVar[str] = "init"
    hook: ClassVar[str] = "facemath_initializers"
    call: ClassVar[str] = "function(targets, z_dim, bound, rng, backend, **params)"
    positional: ClassVar[int | None] = 5

    needs_models: tuple[str, ...] = ()
    needs_encoder: bool = False

    def keywords(self) -> dict[str, Any]:
        return {"encode": None} if self.needs_encoder else {}


@dataclass(frozen=True, repr=False)
class Constraint(Component):
    """Keeps z inside the prior's box during the search.

    `function(variable, bound, generator, **params)` runs inside the step's `tf.function` after every optimizer
    update and returns the variable projected back (e.g. clipped); `generator` is the run's seeded
    `tf.random.Generator`. A reparametrising constraint also sets `to_z(variable, bound, **params)` (tensors: the
    optimised variable to z) and `from_z(z, bound, **params)` (numpy: the starting z to the variable); both are
    the identity when None.
    """

    kind: ClassVar[str] = "constraint"
    hook: ClassVar[str] = "facemath_constraints"
    call: ClassVar[str] = "function(variable, bound, generator, **params)"
    positional: ClassVar[int | None] = 3

    to_z: Callable[..., Any] | None = None
    from_z: Callable[..., Any] | None = None


@dataclass(frozen=True)
class DetectedFace:
    """One face a detector found in a photo, in the photo's pixels (x to the right, y down, the centre of the top
    left pixel at (0, 0)): `box` (x0, y0, x1, y1), `landmarks` five (x, y) points in the order LANDMARKS names
    them (eyes, nose, mouth corners; "left" and "right" as seen in the image), and `score`, the detector's
    confidence (higher is surer)."""

    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    score: float

    LANDMARKS: ClassVar[tuple[str, ...]] = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")

    @property
    def size(self) -> float:
        """The longer side of the box, in pixels: what --min-face compares."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def record(self) -> dict[str, Any]:
        """As faces.json and latents.npz record it."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "score": round(float(self.score), 4),
        }


@dataclass(frozen=True, repr=False)
class FaceDetector(Component):
    """Finds faces in a photo: `function(image, min_face, **params)` gets the photo as a uint8 RGB array (H, W, 3),
    upright (EXIF orientation already applied), and the smallest face size wanted in pixels; it returns a list of
    `DetectedFace` (or of mappings with `box`, `landmarks` and `score`), empty when there is no face."""

    kind: ClassVar[str] = "detector"
    hook: ClassVar[str] = "facemath_face_detectors"
    call: ClassVar[str] = "function(image, min_face, **params)"
    positional: ClassVar[int | None] = 2


@dataclass(frozen=True, repr=False)
class Sampler(Component):
    """Draws z from the posterior that a completion's loss defines, for `facemath complete --sampler NAME`.

    `function(energy, z0, bound, rng, samples, **params)` gets `energy`, a function of z (N, D) float64 numpy
    returning `(U, dU/dz)`: the projection's weighted loss per image (N,) (every term, weight and mask, through the
    backend) and its gradient (N, D); `z0` (N, D), where each image's chain starts (its optimised z); `bound`, the
    half-width of the prior's box [-bound, bound]^D that every sample must stay in; `rng`, the run's seeded numpy
    Generator; and `samples`, how many z to keep per image. It returns `(z, acceptance)`: z of shape
    (N, samples, D) inside the box and each chain's acceptance rate (N,) in [0, 1] (1 for a sampler without
    a Metropolis step).
    """

    kind: ClassVar[str] = "sampler"
    hook: ClassVar[str] = "facemath_samplers"
    call: ClassVar[str] = "function(energy, z0, bound, rng, samples, **params)"
    positional: ClassVar[int | None] = 5


# Every kind of component, in the order `facemath plugins` lists them. A new kind is one class above (with `kind`,
# `hook`, `call`, `positional`) added here, plus its hookspec in hookspecs.py.
COMPONENT_CLASSES: tuple[type[Component], ...] = (
    LossTerm,
    Optimizer,
    Operator,
    Mask,
    Blender,
    Initializer,
    Constraint,
    FaceDetector,
    Sampler,
)
KIND_OF_CLASS: dict[type, str] = {cls: cls.kind for cls in COMPONENT_CLASSES}
HOOK_OF_KIND: dict[str, str] = {cls.kind: cls.hook for cls in COMPONENT_CLASSES}
CLASS_OF_KIND: dict[str, type[Component]] = {cls.kind: cls for cls in COMPONENT_CLASSES}
# Names the core already gives a meaning: `mean` and `attr` are functions of the expression language
# (arithmetic.BUILTIN_FUNCTIONS), `total` is the key of the weighted sum beside the loss terms in latents.npz.
RESERVED_NAMES: dict[str, frozenset[str]] = {
    "operator": frozenset({"mean", "attr"}),
    "loss": frozenset({"total"}),
}
