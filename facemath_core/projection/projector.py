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

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.seeds import RowGenerator, image_rng, row_seeds
from facemath_core.host import contracts
from facemath_core.host.manager import TracedCalls, check_params, guard
from facemath_core.models.architectures import z_bound
from facemath_core.models.encoders import check_encoder

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
    init_params: dict = field(default_factory=dict)
    restarts: int = 1
    constraint: str = "clip"
    constraint_params: dict = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 64
    model: str = "gan"  # project through the GAN generator, or the VAE decoder
    mask: str = "full"
    mask_params: dict = field(default_factory=dict)
    blend: str = "overlay"
    blend_params: dict = field(default_factory=dict)
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
    groups += [(config.blend, config.blend_params), (config.init, config.init_params)]
    groups += [(config.constraint, config.constraint_params)]
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


def parse_params(values: list[str] | None) -> dict[str, dict[str, str]]:
    """`--param NAME.KEY=VALUE` -> {NAME: {KEY: 'VALUE'}}; values stay text until `apply_params` types them by the
    parameter's default."""
    out: dict[str, dict] = {}
    for value in values or []:
        target, sep, raw = value.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise FacemathError(f"--param {value}: expected NAME.KEY=VALUE, e.g. perceptual.form=saturating")
        out.setdefault(name, {})[key] = raw
    return out


def _used_components(config: ProjectionConfig) -> dict[str, tuple[str, str]]:
    """Component name -> (kind, option) for every component this configuration uses."""
    used = {spec.name: ("loss", "--loss-plugin") for spec in config.losses}
    for kind, name, option in (
        ("optimizer", config.optimizer, "--optimizer"),
        ("mask", config.mask, "--mask"),
        ("blender", config.blend, "--blend"),
        ("init", config.init, "--init"),
        ("constraint", config.constraint, "--constraint"),
    ):
        used.setdefault(name, (kind, option))
    return used


def apply_params(
    config: ProjectionConfig, values: list[str] | None, registry, lr: float | None = None
) -> ProjectionConfig:
    """Give each `--param NAME.KEY=VALUE` to the component it names, typed by the parameter's default.

    NAME must be a component this run uses (a loss term, the optimizer, mask, blender, initialiser or
    constraint) and KEY one of its parameters; `--lr X` is `--param OPTIMIZER.lr=X`.
    """
    import difflib

    params = parse_params(values)
    if lr is not None:
        optimizer = registry.get("optimizer", config.optimizer, option="--optimizer")
        if "lr" not in optimizer.defaults:
            raise FacemathError(
                f"--lr {lr}: {optimizer.label} has no parameter 'lr' (parameters: "
                f"{', '.join(optimizer.defaults) or 'none'}); use --param {optimizer.name}.KEY=VALUE"
            )
        params.setdefault(config.optimizer, {})["lr"] = repr(float(lr))
    used = _used_components(config)
    for name, keys in params.items():
        if name in used:
            continue
        shown = f"--param {name}.{next(iter(keys))}={next(iter(keys.values()))}"
        elsewhere = registry.find(name)
        if elsewhere:
            kind = elsewhere[0].kind
            chosen = next((n for n, (k, _) in used.items() if k == kind), None)
            raise FacemathError(
                f"{shown}: {elsewhere[0].label} is not used in this run"
                + (f" (the {kind} is {chosen})" if chosen and kind != "loss" else "")
            )
        close = difflib.get_close_matches(name, [*used, *registry.all_names()], n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; this run uses {', '.join(used)}"
        raise FacemathError(f"{shown}: no component called {name!r}{hint}")

    def typed(kind: str, name: str, given: dict) -> dict:
        # A name used by two kinds (the lowres loss and mask) takes its parameters in the first kind only.
        extra = params.get(name, {}) if used[name][0] == kind else {}
        if not extra:
            return dict(given)
        component = registry.get(kind, name, option=used[name][1])
        checked = check_params(component, {**given, **extra})
        return {k: checked[k] for k in {**given, **extra}}

    return replace(
        config,
        losses=tuple(replace(spec, params=typed("loss", spec.name, spec.params)) for spec in config.losses),
        optimizer_params=typed("optimizer", config.optimizer, config.optimizer_params),
        mask_params=typed("mask", config.mask, config.mask_params),
        blend_params=typed("blender", config.blend, config.blend_params),
        init_params=typed("init", config.init, config.init_params),
        constraint_params=typed("constraint", config.constraint, config.constraint_params),
    )


def _check_params(kind: str, component, params: dict, option: str) -> dict:
    return check_params(component, params, option)


@dataclass
class BatchResult:
    z: np.ndarray  # (N, D) best z per image
    total: np.ndarray  # (N,) weighted total at the best z
    terms: dict[str, np.ndarray]  # per term, (N,) at the best z
    steps: int  # steps taken
    failed: dict[int, int]  # row -> step where its loss became NaN or infinite
    state: dict[str, np.ndarray] | None = None
    failed_terms: dict[int, list[str]] = field(default_factory=dict)  # row -> the terms that were not finite


class Projector:
    """Optimises z for batches of images with the configured plugins, through a backend.

    Every plugin it uses is looked up and its contract checked here, before any step runs (and before a job
    creates its output folder).
    """

    def __init__(self, backend, registry, config: ProjectionConfig):
        if config.model not in MODELS:
            raise FacemathError(f"--model {config.model!r}: choose gan or vae")
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
        self.init_component = registry.get("init", config.init, option="--init")
        self.init_params = check_params(self.init_component, config.init_params)
        self.constraint = registry.get("constraint", config.constraint, option="--constraint")
        self.constraint_params = check_params(self.constraint, config.constraint_params)
        self.terms = []
        for spec in config.losses:
            component = registry.get("loss", spec.name, option="--loss-plugin")
            self.terms.append((spec, component, check_params(component, spec.params)))
        opt = registry.get("optimizer", config.optimizer, option="--optimizer")
        self.optimizer_component = opt
        self.optimizer_params = check_params(opt, config.optimizer_params)
        meta = backend.metadata(self.model)
        self.z_dim, self.image_size = meta["z_dim"], meta["image_size"]
        self.z_distribution = meta["z_distribution"]
        self.bound = z_bound(self.z_distribution)
        self.needs_discriminator = any(c.needs_discriminator for _, c, _ in self.terms)
        if self.needs_discriminator and config.model == "vae":
            names = ", ".join(c.label for _, c, _ in self.terms if c.needs_discriminator)
            raise FacemathError(f"{names} needs the GAN discriminator, and --model vae has none")
        missing = [m for m in self.init_component.needs_models if not backend.has(m)]
        if missing:
            raise FacemathError(
                f"--init {config.init}: {self.init_component.label} needs the {', '.join(missing)} model "
                f"beside the {self.model} ({backend.describe()})"
            )
        self.init_extra = {}
        if self.init_component.needs_encoder:
            check_encoder(backend, self.model, f"--init {config.init}")
            self.init_extra = {"encode": lambda images: backend.encode_z(images, self.model)}
        encoded_terms = [(spec, c) for spec, c, _ in self.terms if c.needs_encoder]
        for spec, _ in encoded_terms:
            check_encoder(backend, self.model, f"--loss-plugin {spec.name}")
        self.check_contracts()
        self.decoder = backend.differentiable_decoder(self.model)
        self.encoder = backend.differentiable_encoder(self.model) if encoded_terms else None
        self.fused = backend.fused_objective(self.model, self.terms)  # one call per step where the backend can
        self.discriminator = backend.differentiable_discriminator() if self.needs_discriminator else None
        self._loops: dict[int, tuple] = {}  # batch size -> (variable, active, generator, optimizer, fresh, step)
        self._calls = TracedCalls()  # plugin calls inside the step's tf.function, for one-line errors

    def check_contracts(self) -> None:
        """Each loss term, the optimizer and the constraint once on tiny inputs: a broken plugin is one line
        naming it, before any work."""
        for _, component, params in self.terms:
            contracts.check_loss_term(component, params, self.image_size)
        contracts.make_optimizer(self.optimizer_component, self.optimizer_params)
        contracts.check_constraint(self.constraint, self.constraint_params, self.z_dim, self.bound)

    # --- initialisation -------------------------------------------------------------------------------------

    def initial_z(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return contracts.initial_z(
            self.init_component, self.init_params, targets, self.z_dim, self.bound, rng, self.backend, self.init_extra
        )

    def seeded_initial_z(self, targets: np.ndarray, keys: list[str], restarts: int = 1) -> np.ndarray:
        """Each row's starting z from its own seed (--seed, the image's key, the restart; base/seeds.py), one
        image at a time, so a face starts where it would in any other batch. Rows i*K .. i*K+K-1 are image i's K
        restarts."""
        rows = []
        for row, target in enumerate(targets):
            restart = row % restarts
            rng = image_rng(self.config.seed, keys[row // restarts], "init", restart)
            if restart and self.init_component.needs_encoder:
                # The first try starts at the encoder's z, the others at random points of the prior.
                rows.append(rng.uniform(-self.bound, self.bound, (1, self.z_dim)).astype(np.float32))
            else:
                rows.append(self.initial_z(target[None], rng))
        return np.concatenate(rows) if rows else np.zeros((0, self.z_dim), np.float32)

    # --- the step -------------------------------------------------------------------------------------------

    def _make_step(self, variable, optimizer, active, generator) -> Callable:
        import tensorflow as tf

        calls = self._calls
        bound = self.bound
        constraint, constraint_params = self.constraint, self.constraint_params
        terms = self.terms
        decoder, discriminator, encoder, fused = self.decoder, self.discriminator, self.encoder, self.fused

        def to_z(v):
            if constraint.to_z is None:
                return v
            return calls.run(constraint, constraint.to_z, v, bound, **constraint_params)

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
                    latents = {"z": z, "encoded": encoder(images)} if encoder is not None else {}
                    values = {
                        spec.name: calls.call(
                            component,
                            target,
                            images,
                            mask,
                            logits,
                            **(latents if component.needs_encoder else {}),
                            **params,
                        )
                        for spec, component, params in terms
                    }
                    total = tf.add_n([spec.weight * values[spec.name] for spec, _, _ in terms])
                # Rows are independent: the gradient of the sum is every image's own gradient.
                objective = tf.reduce_sum(tf.where(active > 0, total, 0.0))
            finite = tf.math.is_finite(total) & (active > 0)
            grad = tape.gradient(objective, variable)
            grad = tf.where(tf.math.is_finite(grad), grad, 0.0) * tf.cast(finite, tf.float32)[:, None]
            optimizer.apply_gradients([(grad, variable)])
            updated = calls.call(constraint, tf.identity(variable), bound, generator, **constraint_params)
            # Finished or failed rows keep their z: Adam's momentum would otherwise move them on.
            variable.assign(tf.where(finite[:, None], updated, old))
            active.assign(tf.cast(finite, tf.float32) * active)
            return values, total, to_z(old)

        return step

    def _loop(self, n: int, seeds: np.ndarray):
        """The variables, optimizer and step function for batches of `n` images, built once per batch size and
        reset for every batch, so that tf.function traces one step per shape rather than one per batch."""
        import keras
        import tensorflow as tf

        if n not in self._loops:
            variable = tf.Variable(np.zeros((n, self.z_dim), np.float32), name="z")
            active = tf.Variable(np.ones(n, np.float32), name="active")
            generator = RowGenerator(n)
            optimizer = contracts.make_optimizer(self.optimizer_component, self.optimizer_params)
            with guard(self.optimizer_component, "building its state"):
                optimizer.build([variable])
            fresh = [np.asarray(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
            step = self._make_step(variable, optimizer, active, generator)
            self._loops[n] = (variable, active, generator, optimizer, fresh, step)
        variable, active, generator, optimizer, fresh, step = self._loops[n]
        active.assign(np.ones(n, np.float32))
        generator.reset(seeds)
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
        seeds: np.ndarray | None = None,
    ) -> BatchResult:
        """Optimise one batch. `targets` (N, H, W, 3) in [-1, 1], `masks` (N, H, W) with 1 = known, `z0` (N, D).

        `progress(steps_done, mean_total)` is called every step; `on_checkpoint(state)` every `checkpoint_every`
        steps with everything needed to continue (`state=`) exactly where it stopped. `seeds` (N, 2) seed each
        row's random draws (stochastic clipping; `facemath_core.base.seeds`); by default row i's come from --seed and i.
        Rows never mix: a row's result does not depend on the others in the batch.
        """
        import keras
        import tensorflow as tf

        cfg = self.config
        n = len(targets)
        if seeds is None:
            seeds = row_seeds(cfg.seed, [f"row {i}" for i in range(n)], 1, "constraint")
        start_value = z0
        if self.constraint.from_z is not None:
            with guard(self.constraint, "mapping the starting z"):
                start_value = self.constraint.from_z(z0, self.bound, **self.constraint_params)
        variable, active, generator, optimizer, step_fn = self._loop(n, seeds)
        variable.assign(np.asarray(start_value, np.float32))
        best_z = z0.astype(np.float32).copy()
        best_total = np.full(n, np.inf, np.float32)
        best_terms = {spec.name: np.full(n, np.nan, np.float32) for spec, _, _ in self.terms}
        last_improved = np.zeros(n, np.int64)
        failed: dict[int, int] = {}
        failed_terms: dict[int, list[str]] = {}
        start = 0
        if state is not None:
            variable.assign(state["variable"])
            active.assign(state["active"])
            generator.reset(seeds, int(state.get("draws", 0)))
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
                "draws": generator.draws.numpy(),
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
            with self._calls.guard("in a projection step"):
                values, total, z_before = step_fn(target, mask)
            total, z_before = total.numpy(), z_before.numpy()
            steps_done = step + 1
            newly_failed = was_active & ~np.isfinite(total)
            for row in np.nonzero(newly_failed)[0]:
                failed[int(row)] = step
                failed_terms[int(row)] = [
                    f"{name} ({value.numpy()[row]:g})"
                    for name, value in values.items()
                    if not np.isfinite(value.numpy()[row])
                ]
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
            # A row that has stopped improving stops moving now, not when the whole batch has: its result must
            # not depend on how long its batch-mates keep going.
            active.assign(running.astype(np.float32))
            if not running.any():
                break
        return BatchResult(best_z, best_total, best_terms, steps_done, failed, snapshot(steps_done), failed_terms)


def with_preset(config: ProjectionConfig, preset: str | None) -> ProjectionConfig:
    if preset is None:
        return config
    if preset not in PRESETS:
        raise FacemathError(f"--preset {preset}: unknown preset; known: {', '.join(PRESETS)}")
    return replace(config, preset=preset, **PRESETS[preset])
