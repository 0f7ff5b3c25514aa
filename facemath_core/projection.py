"""Projection: search z so that G(z) matches an image, with loss terms, optimizer and masks from plugins.

total(image) = sum_i weight_i * term_i(target, G(z), mask, D(G(z)))   (one value per image)

One optimisation step (forward through the generator and, if a term needs it, the discriminator; every loss term;
the gradient; the optimizer update; the z constraint) is one `tf.function`. The backend supplies the generator and
discriminator as differentiable callables: the SavedModel functions themselves when embedded, remote calls whose
gradients are the `vjp` / `grad` signatures otherwise. The loop below never knows which.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from facemath_core import signatures as S
from facemath_core.errors import FacemathError

INITS = ("uniform", "normal", "encoder")
CONSTRAINTS = ("clip", "stochastic", "tanh", "none")
MODELS = {"gan": S.GENERATOR, "vae": S.VAE_DECODER}


@dataclass(frozen=True)
class LossSpec:
    name: str
    weight: float
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectionConfig:
    losses: tuple[LossSpec, ...] = (LossSpec("contextual", 1.0),)
    optimizer: str = "adam"
    optimizer_params: dict = field(default_factory=dict)
    steps: int = 1000
    init: str = "uniform"
    restarts: int = 1
    constraint: str = "clip"
    seed: int = 0
    batch_size: int = 64
    model: str = "gan"  # project through the GAN generator, or the VAE decoder
    mask: str = "full"
    mask_params: dict = field(default_factory=dict)
    blend: str = "overlay"
    patience: int = 200  # stop an image once its loss has not improved by `tolerance` for this many steps
    tolerance: float = 1e-4
    preset: str | None = None

    def __post_init__(self):
        check_numbers(self)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["losses"] = [asdict(spec) for spec in self.losses]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ProjectionConfig:
        d = dict(d)
        d["losses"] = tuple(LossSpec(**spec) for spec in d["losses"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# Optimizer parameters that are fractions (a decay rate of 1 or more never forgets; below 0 is meaningless).
_FRACTIONS = ("beta_1", "beta_2", "momentum")


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_numbers(config: ProjectionConfig) -> None:
    """Refuse numbers no run can use, naming the option: counts below 1, a learning rate that is not a finite
    number > 0, NaN or infinite weights and parameters (a NaN learning rate silently fails every image)."""
    for option, value in (
        ("--steps", config.steps),
        ("--restarts", config.restarts),
        ("--batch-size", config.batch_size),
        ("--patience", config.patience),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise FacemathError(f"{option} {value}: must be a whole number of at least 1")
    if not isinstance(config.seed, int) or config.seed < 0:
        raise FacemathError(f"--seed {config.seed}: must be a whole number >= 0")
    if not _finite(config.tolerance) or config.tolerance < 0:
        raise FacemathError(f"tolerance {config.tolerance}: must be a finite number >= 0")
    for spec in config.losses:
        if not _finite(spec.weight) or spec.weight < 0:
            raise FacemathError(f"--loss-plugin {spec.name}={spec.weight}: the weight must be a finite number >= 0")
    lr = config.optimizer_params.get("lr")
    if lr is not None and (not _finite(lr) or lr <= 0):
        raise FacemathError(f"--lr {lr}: the learning rate must be a finite number > 0")
    groups = [(config.optimizer, config.optimizer_params), (config.mask, config.mask_params)]
    groups += [(spec.name, spec.params) for spec in config.losses]
    for name, params in groups:
        for key, value in params.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise FacemathError(f"--param {name}.{key}={value}: must be a finite number")
    for key in _FRACTIONS:
        value = config.optimizer_params.get(key)
        if _finite(value) and not 0 <= value < 1:
            raise FacemathError(f"--param {config.optimizer}.{key}={value}: must lie in [0, 1)")


# The anchors' settings. Yeh et al. 2017: weighted contextual + 0.003 perceptual, Poisson blending;
# Amos 2016 (dcgan-completion): contextual + 0.1 perceptual, Adam lr 0.01, clipping;
# Sirer 2016 ("Face Math"): l2 + 0.1 perceptual, momentum 0.75 at lr 5e-4.
_ADAM_CLIPPED = dict(optimizer="adam", optimizer_params={"lr": 0.01}, constraint="clip")  # Amos's and Yeh's
PRESETS: dict[str, dict] = {
    "amos2016": dict(
        _ADAM_CLIPPED, losses=(LossSpec("contextual", 1.0), LossSpec("perceptual", 0.1)), steps=1000, blend="overlay"
    ),
    "yeh2017": dict(
        _ADAM_CLIPPED,
        losses=(LossSpec("weighted-contextual", 1.0), LossSpec("perceptual", 0.003, {"form": "saturating"})),
        steps=1500,
        blend="poisson",
    ),
    "sirer2016": dict(
        losses=(LossSpec("l2", 1.0), LossSpec("perceptual", 0.1)),
        optimizer="momentum",
        optimizer_params={"lr": 5e-4, "momentum": 0.75},
        steps=2000,
        constraint="clip",
        blend="overlay",
    ),
}


def parse_loss_options(values: list[str] | None, base: tuple[LossSpec, ...], registry) -> tuple[LossSpec, ...]:
    """Apply `--loss-plugin NAME[=WEIGHT]` options to the base terms: a new term is added (at its default weight
    unless given), a named existing term gets the new weight, and weight 0 removes it."""
    specs = {spec.name: spec for spec in base}
    for value in values or []:
        name, sep, weight_text = value.partition("=")
        component = registry.get("loss", name, option="--loss-plugin")
        if sep:
            try:
                weight = float(weight_text)
            except ValueError:
                raise FacemathError(
                    f"--loss-plugin {value}: weight {weight_text!r} is not a number "
                    f"(use NAME or NAME=WEIGHT, e.g. perceptual=0.1)"
                ) from None
            if not math.isfinite(weight) or weight < 0:
                raise FacemathError(f"--loss-plugin {value}: the weight must be a finite number >= 0")
        else:
            weight = component.default_weight
        previous = specs.get(name)
        specs[name] = LossSpec(name, weight, previous.params if previous else {})
    kept = tuple(spec for spec in specs.values() if spec.weight > 0)
    if not kept:
        raise FacemathError("--loss-plugin: every loss term has weight 0; nothing to optimise")
    return kept


def parse_params(values: list[str] | None) -> dict[str, dict]:
    """`--param NAME.KEY=VALUE` -> {NAME: {KEY: value}}; values are numbers where they parse as numbers."""
    out: dict[str, dict] = {}
    for value in values or []:
        target, sep, raw = value.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise FacemathError(f"--param {value}: expected NAME.KEY=VALUE, e.g. perceptual.form=saturating")
        try:
            parsed: object = int(raw)
        except ValueError:
            try:
                parsed = float(raw)
            except ValueError:
                parsed = raw
        out.setdefault(name, {})[key] = parsed
    return out


def _check_params(kind: str, component, params: dict, option: str) -> dict:
    unknown = sorted(set(params) - set(component.defaults))
    if unknown:
        known = ", ".join(component.defaults) or "none"
        raise FacemathError(
            f"{option} {component.name}.{unknown[0]}: {kind} {component.name!r} has no parameter "
            f"{unknown[0]!r} (parameters: {known})"
        )
    return {**component.defaults, **params}


def z_bound(z_distribution: str) -> float:
    """The box the constraints keep z in: the support of U(-1, 1), or +-3 standard deviations of N(0, 1)."""
    return 1.0 if z_distribution == "uniform" else 3.0


@dataclass
class BatchResult:
    z: np.ndarray  # (N, D) best z per image
    total: np.ndarray  # (N,) weighted total at the best z
    terms: dict[str, np.ndarray]  # per term, (N,) at the best z
    steps: int  # steps taken
    failed: dict[int, int]  # row -> step where its loss became NaN or infinite
    state: dict[str, np.ndarray] | None = None


class Projector:
    """Optimises z for batches of images with the configured plugins, through a backend."""

    def __init__(self, backend, registry, config: ProjectionConfig):
        if config.model not in MODELS:
            raise FacemathError(f"--model {config.model!r}: choose gan or vae")
        for name, value, choices in (("--init", config.init, INITS), ("--constraint", config.constraint, CONSTRAINTS)):
            if value not in choices:
                raise FacemathError(f"{name} {value!r}: choose {', '.join(choices)}")
        for name, value in (
            ("--steps", config.steps),
            ("--restarts", config.restarts),
            ("--batch-size", config.batch_size),
        ):
            if value < 1:
                raise FacemathError(f"{name} {value}: must be at least 1")
        self.backend = backend
        self.config = config
        self.model = MODELS[config.model]
        meta = backend.metadata(self.model)
        self.z_dim, self.image_size = meta["z_dim"], meta["image_size"]
        self.z_distribution = meta["z_distribution"]
        self.bound = z_bound(self.z_distribution)
        self.terms = []
        for spec in config.losses:
            component = registry.get("loss", spec.name, option="--loss-plugin")
            self.terms.append((spec, component, _check_params("loss", component, spec.params, "--param")))
        self.needs_discriminator = any(c.needs_discriminator for _, c, _ in self.terms)
        if self.needs_discriminator and config.model == "vae":
            raise FacemathError("the perceptual term needs the GAN discriminator; it cannot judge the VAE decoder")
        opt = registry.get("optimizer", config.optimizer, option="--optimizer")
        self.optimizer_component = opt
        self.optimizer_params = _check_params("optimizer", opt, config.optimizer_params, "--param")
        self.decoder = backend.differentiable_decoder(self.model)
        self.fused = backend.fused_objective(self.model, self.terms)  # one call per step where the backend can
        self.discriminator = backend.differentiable_discriminator() if self.needs_discriminator else None
        if config.init == "encoder" and not backend.has(S.VAE_ENCODER):
            raise FacemathError("--init encoder needs a vae_encoder model beside the generator")
        self._loops: dict[int, tuple] = {}  # batch size -> (variable, active, generator, optimizer, fresh, step)

    # --- initialisation -------------------------------------------------------------------------------------

    def initial_z(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(targets)
        if self.config.init == "encoder":
            z_mean, _ = self.backend.encode(targets)
            return np.clip(z_mean, -self.bound, self.bound).astype(np.float32)
        if self.config.init == "normal":
            return np.clip(rng.standard_normal((n, self.z_dim)), -self.bound, self.bound).astype(np.float32)
        return rng.uniform(-self.bound, self.bound, (n, self.z_dim)).astype(np.float32)

    # --- the step -------------------------------------------------------------------------------------------

    def _make_step(self, variable, optimizer, active, generator) -> Callable:
        import tensorflow as tf

        bound = self.bound
        constraint = self.config.constraint
        terms = self.terms
        decoder, discriminator, fused = self.decoder, self.discriminator, self.fused

        def to_z(v):
            return bound * tf.tanh(v) if constraint == "tanh" else v

        @tf.function
        def step(target, mask):
            old = tf.identity(variable)
            with tf.GradientTape() as tape:
                z = to_z(variable)
                if fused is not None:
                    values, total = fused(z, target, mask)
                else:
                    images = decoder(z)
                    logits = discriminator(images) if discriminator is not None else None
                    values = {
                        spec.name: component.function(target, images, mask, logits, **params)
                        for spec, component, params in terms
                    }
                    total = tf.add_n([spec.weight * values[spec.name] for spec, _, _ in terms])
                # Rows are independent: the gradient of the sum is every image's own gradient.
                objective = tf.reduce_sum(tf.where(active > 0, total, 0.0))
            finite = tf.math.is_finite(total) & (active > 0)
            grad = tape.gradient(objective, variable)
            grad = tf.where(tf.math.is_finite(grad), grad, 0.0) * tf.cast(finite, tf.float32)[:, None]
            optimizer.apply_gradients([(grad, variable)])
            updated = tf.identity(variable)
            if constraint == "clip":
                updated = tf.clip_by_value(updated, -bound, bound)
            elif constraint == "stochastic":
                # Lipton & Tripathi: components that leave the box are redrawn uniformly inside it.
                redraw = generator.uniform(tf.shape(updated), -bound, bound)
                updated = tf.where(tf.abs(updated) > bound, redraw, updated)
            # Finished or failed rows keep their z: Adam's momentum would otherwise move them on.
            variable.assign(tf.where(finite[:, None], updated, old))
            active.assign(tf.cast(finite, tf.float32) * active)
            return values, total, to_z(old)

        return step

    def _loop(self, n: int):
        """The variables, optimizer and step function for batches of `n` images, built once per batch size and
        reset for every batch, so that tf.function traces one step per shape rather than one per batch."""
        import keras
        import tensorflow as tf

        if n not in self._loops:
            variable = tf.Variable(np.zeros((n, self.z_dim), np.float32), name="z")
            active = tf.Variable(np.ones(n, np.float32), name="active")
            generator = tf.random.Generator.from_seed(self.config.seed)
            optimizer = self.optimizer_component.function(**self.optimizer_params)
            optimizer.build([variable])
            fresh = [np.asarray(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
            step = self._make_step(variable, optimizer, active, generator)
            self._loops[n] = (variable, active, generator, optimizer, fresh, step)
        variable, active, generator, optimizer, fresh, step = self._loops[n]
        active.assign(np.ones(n, np.float32))
        generator.reset_from_seed(self.config.seed)
        for var, value in zip(optimizer.variables, fresh, strict=True):
            var.assign(value)
        return variable, active, generator, optimizer, step

    def project(
        self,
        targets: np.ndarray,
        masks: np.ndarray,
        z0: np.ndarray,
        progress=None,
        state: dict | None = None,
        on_checkpoint=None,
        checkpoint_every: int = 100,
    ) -> BatchResult:
        """Optimise one batch. `targets` (N, H, W, 3) in [-1, 1], `masks` (N, H, W) with 1 = known, `z0` (N, D).

        `progress(steps_done, mean_total)` is called every step; `on_checkpoint(state)` every `checkpoint_every`
        steps with everything needed to continue (`state=`) exactly where it stopped.
        """
        import keras
        import tensorflow as tf

        cfg = self.config
        n = len(targets)
        start_value = np.arctanh(np.clip(z0 / self.bound, -0.999, 0.999)) if cfg.constraint == "tanh" else z0
        variable, active, generator, optimizer, step_fn = self._loop(n)
        variable.assign(start_value.astype(np.float32))
        best_z = z0.astype(np.float32).copy()
        best_total = np.full(n, np.inf, np.float32)
        best_terms = {spec.name: np.full(n, np.nan, np.float32) for spec, _, _ in self.terms}
        last_improved = np.zeros(n, np.int64)
        failed: dict[int, int] = {}
        start = 0
        if state is not None:
            variable.assign(state["variable"])
            active.assign(state["active"])
            generator.reset(tf.constant(state["generator"], tf.int64))
            for var, value in zip(optimizer.variables, state["optimizer"], strict=True):
                var.assign(value)
            best_z, best_total = state["best_z"].copy(), state["best_total"].copy()
            best_terms = {k[len("term_") :]: v.copy() for k, v in state.items() if k.startswith("term_")}
            last_improved, start = state["last_improved"].copy(), int(state["step"])
            failed = {int(r): int(s) for r, s in state["failed"]}
        target = tf.constant(targets, tf.float32)
        mask = tf.constant(masks[..., None], tf.float32)

        def snapshot(step_done):
            return {
                "variable": variable.numpy(),
                "active": active.numpy(),
                "generator": generator.state.numpy(),
                "optimizer": [np.asarray(keras.ops.convert_to_numpy(v)) for v in optimizer.variables],
                "best_z": best_z,
                "best_total": best_total,
                "last_improved": last_improved,
                "step": step_done,
                "failed": np.array(sorted(failed.items()), np.int64).reshape(-1, 2),
                **{f"term_{k}": v for k, v in best_terms.items()},
            }

        steps_done = start
        for step in range(start, cfg.steps):
            was_active = active.numpy() > 0
            values, total, z_before = step_fn(target, mask)
            total, z_before = total.numpy(), z_before.numpy()
            steps_done = step + 1
            newly_failed = was_active & ~np.isfinite(total)
            for row in np.nonzero(newly_failed)[0]:
                failed[int(row)] = step
            # The loss at step s belongs to the z before the update of step s.
            with np.errstate(invalid="ignore"):
                threshold = np.where(np.isfinite(best_total), best_total * (1 - cfg.tolerance), np.inf)
            improved = was_active & np.isfinite(total) & (total < threshold)
            better = was_active & np.isfinite(total) & (total < best_total)
            best_z[better] = z_before[better]
            best_total[better] = total[better]
            for name, value in values.items():
                best_terms[name][better] = value.numpy()[better]
            last_improved[improved] = step
            if progress:
                finite = total[np.isfinite(total)]
                progress(
                    steps_done,
                    float(finite.mean()) if finite.size else float("nan"),
                    {k: float(np.nanmean(v.numpy())) for k, v in values.items()},
                )
            if on_checkpoint and steps_done % checkpoint_every == 0 and steps_done < cfg.steps:
                on_checkpoint(snapshot(steps_done))
            running = (active.numpy() > 0) & (step - last_improved < cfg.patience)
            if not running.any():
                break
        return BatchResult(best_z, best_total, best_terms, steps_done, failed, snapshot(steps_done))


def with_preset(config: ProjectionConfig, preset: str | None) -> ProjectionConfig:
    if preset is None:
        return config
    if preset not in PRESETS:
        raise FacemathError(f"--preset {preset}: unknown preset; known: {', '.join(PRESETS)}")
    return replace(config, preset=preset, **PRESETS[preset])
