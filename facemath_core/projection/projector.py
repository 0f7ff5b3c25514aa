"""Projection: search z so that G(z) matches an image, with loss terms, optimizer and masks from plugins.

total(image) = sum_i weight_i * term_i(target, G(z), mask, D(G(z)))   (one value per image)

One optimisation step (forward through the generator and, if a term needs it, the discriminator; every loss term;
the gradient; the optimizer update; the z constraint) is traced once, and the loop around it is compiled too: one
call of a `tf.function` runs up to K steps in a `tf.while_loop` and keeps the best z, each image's patience and
its freezing in device variables, so the host sees the loop only when a call returns (progress, checkpoints, the
end). The backend supplies the generator and discriminator as differentiable callables: the SavedModel functions
themselves when embedded, remote calls whose gradients are the `vjp` / `grad` signatures otherwise, or the whole
objective in one request (`fused_objective`). The loop never knows which.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.seeds import RowGenerator, image_rng, row_seeds
from facemath_core.host import contracts
from facemath_core.host.manager import TracedCalls, check_params, coerce_param, guard
from facemath_core.models.architectures import z_bound
from facemath_core.models.encoders import ENCODER_OF, check_encoder

MODELS = S.FAMILIES  # --model: the decoder of each family
# Tracing (and AutoGraph's conversion) is not safe in two threads at once: two studio sessions starting their first
# projections together failed inside tf.GradientTape ("'NoneType' object is not iterable"). Traces take turns under
# this lock; the compiled steps themselves run in parallel.
_TRACING = threading.Lock()


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
    init: str | None = "uniform"  # None: the best start, the model's own encoder when it has one (resolve_start)
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
# Each paper starts from uniform random z: a preset keeps that start unless --init says otherwise.
_ADAM_CLIPPED = dict(optimizer="adam", optimizer_params={"lr": 0.01}, constraint="clip", init="uniform")
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
        init="uniform",
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
        if name is not None:  # init None: the best start, resolved when the models are known
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
        coerce_param(optimizer, "lr", float(lr), shown=f"--lr {lr}")  # named as given, before the --params
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

    def typed(kind: str, name: str | None, given: dict) -> dict:
        # A name used by two kinds (the lowres loss and mask) takes its parameters in the first kind only.
        extra = params.get(name, {}) if name in used and used[name][0] == kind else {}
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


# Steps per call of the compiled loop are chosen to come back to the host about this often (progress, previews,
# Ctrl-C and cancelling are seen then), and never more than this many steps at once.
REPORT_SECONDS = 0.5
MAX_STEPS_PER_CALL = 1000


@dataclass
class BatchResult:
    z: np.ndarray  # (N, D) best z per image
    total: np.ndarray  # (N,) weighted total at the best z
    terms: dict[str, np.ndarray]  # per term, (N,) at the best z
    steps: int  # steps taken
    failed: dict[int, int]  # row -> step where its loss became NaN or infinite
    state: dict[str, np.ndarray] | None = None
    failed_terms: dict[int, list[str]] = field(default_factory=dict)  # row -> the terms that were not finite
    stopped: bool = False  # `stop()` ended it early: the best z so far


@dataclass(frozen=True)
class Interval:
    """What the host learns when the compiled loop comes back: the steps it ran, each step's mean total and mean
    terms over the batch, and the best z so far on request (one read of the device then, not before)."""

    steps: int  # steps done in this batch, all calls together
    history: list[tuple[int, float, dict[str, float]]]  # (step, mean total of the finite rows, mean per term)
    best: Callable[[], tuple[np.ndarray, np.ndarray]]  # () -> (best z, its total) per row


@dataclass(frozen=True)
class Energy:
    """The projection objective as a function of z, for a sampler (or anything else) that needs it: `total(z)`
    is the weighted sum of the loss terms per image for the batch's targets and masks, exactly as each step
    computes and differentiates it (`values(z)` gives the terms too). z lives in the prior's box
    [-bound, bound]^D that the constraint keeps the projection in."""

    function: Callable  # z (N, D) tensor -> (values {term: (N,)}, total (N,))
    bound: float
    constraint: object  # the constraint component the projection used (clip, stochastic, tanh, ...)
    constraint_params: dict
    calls: TracedCalls | None = field(default=None, compare=False)  # the projector's, for `guard`

    def guard(self, what: str):
        """Around a `tf.function` that traces `function`: what a loss term raises there is one line naming it."""
        return self.calls.guard(what) if self.calls is not None else contextlib.nullcontext()

    def values(self, z):
        return self.function(z)

    def total(self, z):
        return self.function(z)[1]


class _Loop:
    """Everything one batch size needs on the device: the variable and the optimizer state, the best z and its
    loss so far, when each row last improved and whether it still runs, and the compiled K-step function."""

    def __init__(self, projector: Projector, n: int):
        import keras
        import tensorflow as tf

        p = projector
        names = [spec.name for spec, _, _ in p.terms]
        self.names = names
        self.variable = tf.Variable(np.zeros((n, p.z_dim), np.float32), name="z")
        self.active = tf.Variable(np.ones(n, np.float32), name="active")
        self.generator = RowGenerator(n)
        # Its apply_gradients runs while the step is traced: what it raises is reported against the plugin.
        self.optimizer = contracts.make_optimizer(p.optimizer_component, p.optimizer_params, p._calls)
        with guard(p.optimizer_component, "building its state"):
            self.optimizer.build([self.variable])
        self.fresh = [np.asarray(keras.ops.convert_to_numpy(v)) for v in self.optimizer.variables]
        self.best_z = tf.Variable(np.zeros((n, p.z_dim), np.float32), name="best_z")
        self.best_total = tf.Variable(np.full(n, np.inf, np.float32), name="best_total")
        self.best_terms = {
            k: tf.Variable(np.full(n, np.nan, np.float32), name=f"best_{i}") for i, k in enumerate(names)
        }
        # The terms' values at the step a row failed, for the message naming the culprit (0: not recorded).
        self.fail_values = {k: tf.Variable(np.zeros(n, np.float32), name=f"fail_{i}") for i, k in enumerate(names)}
        self.last_improved = tf.Variable(np.zeros(n, np.int64), name="last_improved")
        self.failed_at = tf.Variable(np.full(n, -1, np.int64), name="failed_at")
        self.step = tf.Variable(np.int64(0), name="step")
        self.steps = tf.Variable(np.int64(0), name="steps")  # the batch's total
        self.patience = tf.Variable(np.int64(0), name="patience")
        self.keep = tf.Variable(np.float32(1), name="keep")  # 1 - tolerance: what counts as an improvement
        self.advance = self._compile(p)

    def _compile(self, p: Projector):
        import tensorflow as tf

        calls, bound = p._calls, p.bound
        constraint, constraint_params = p.constraint, p.constraint_params
        objective, names = p._objective, self.names
        variable, active, optimizer, generator = self.variable, self.active, self.optimizer, self.generator
        best_z, best_total, best_terms = self.best_z, self.best_total, self.best_terms
        fail_values, last_improved, failed_at = self.fail_values, self.last_improved, self.failed_at
        step_var, steps, patience, keep = self.step, self.steps, self.patience, self.keep

        def mean(values, keep_row):
            count = tf.reduce_sum(tf.cast(keep_row, tf.float32))
            total = tf.reduce_sum(tf.where(keep_row, values, 0.0))
            return tf.where(count > 0, total / tf.maximum(count, 1.0), float("nan"))

        def one_step(inputs):
            step = step_var.read_value()
            was_active = active > 0
            old = tf.identity(variable)
            with tf.GradientTape() as tape:
                values, total = objective(p._to_z(variable), inputs)
                # Rows are independent: the gradient of the sum is every image's own gradient.
                summed = tf.reduce_sum(tf.where(was_active, total, 0.0))
            finite = tf.math.is_finite(total) & was_active
            grad = tape.gradient(summed, variable)
            grad = tf.where(tf.math.is_finite(grad), grad, 0.0) * tf.cast(finite, tf.float32)[:, None]
            optimizer.apply_gradients([(grad, variable)])
            updated = calls.run(
                constraint, p._graph(constraint.function), tf.identity(variable), bound, generator, **constraint_params
            )
            # Finished or failed rows keep their z: Adam's momentum would otherwise move them on.
            variable.assign(tf.where(finite[:, None], updated, old))
            active.assign(tf.cast(finite, tf.float32) * active)
            # The loss at step s belongs to the z before the update of step s.
            z_before = p._to_z(old)
            newly_failed = was_active & ~tf.math.is_finite(total)
            failed_at.assign(tf.where(newly_failed, step, failed_at))
            for name in names:
                fail_values[name].assign(tf.where(newly_failed, values[name], fail_values[name]))
            threshold = tf.where(tf.math.is_finite(best_total), best_total * keep, float("inf"))
            improved = finite & (total < threshold)
            better = finite & (total < best_total)
            best_z.assign(tf.where(better[:, None], z_before, best_z))
            best_total.assign(tf.where(better, total, best_total))
            for name in names:
                best_terms[name].assign(tf.where(better, values[name], best_terms[name]))
            last_improved.assign(tf.where(improved, step, last_improved))
            # A row that has stopped improving stops moving now, not when the whole batch has: its result must
            # not depend on how long its batch-mates keep going.
            running = (active > 0) & (step - last_improved < patience)
            active.assign(tf.cast(running, tf.float32))
            step_var.assign_add(1)
            row = [mean(total, tf.math.is_finite(total))]
            row += [mean(values[name], ~tf.math.is_nan(values[name])) for name in names]
            return tf.stack(row)

        # Traced without AutoGraph: the loop is written with tf.while_loop, and AutoGraph over it and Keras's
        # optimizer cost over a second of every trace (a studio projection waited for it); plugin code still goes
        # through AutoGraph (`Projector._graph`), as in a tf.function of its own.
        @tf.function(autograph=False)
        def advance(k, inputs):
            """Up to k steps, stopping early once every row has stopped or the batch's steps are done; each
            step's mean total and terms, one row per step taken."""

            def more(i, history):
                return (i < k) & (step_var < steps) & tf.reduce_any(active > 0)

            def body(i, history):
                return i + 1, history.write(tf.cast(i, tf.int32), one_step(inputs))

            empty = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[1 + len(names)])
            _, history = tf.while_loop(more, body, [tf.constant(0, tf.int64), empty])
            return history.stack()

        return advance

    def reset(self, start_value, z0, seeds, steps: int, patience: int, tolerance: float) -> None:
        """A fresh batch: every row runs, Adam's moments and the noise start again."""
        self.variable.assign(np.asarray(start_value, np.float32))
        self.active.assign(np.ones(self.active.shape, np.float32))
        self.generator.reset(seeds)
        for var, value in zip(self.optimizer.variables, self.fresh, strict=True):
            var.assign(value)
        self.best_z.assign(np.asarray(z0, np.float32))
        self.best_total.assign(np.full(self.best_total.shape, np.inf, np.float32))
        for name in self.names:
            self.best_terms[name].assign(np.full(self.best_total.shape, np.nan, np.float32))
            self.fail_values[name].assign(np.zeros(self.best_total.shape, np.float32))
        self.last_improved.assign(np.zeros(self.last_improved.shape, np.int64))
        self.failed_at.assign(np.full(self.failed_at.shape, -1, np.int64))
        self.step.assign(np.int64(0))
        self.settle(steps, patience, tolerance)

    def settle(self, steps: int, patience: int, tolerance: float) -> None:
        self.steps.assign(np.int64(steps))
        self.patience.assign(np.int64(patience))
        self.keep.assign(np.float32(1 - tolerance))

    def restore(self, state: dict, seeds) -> None:
        """Where a snapshot left off (a checkpoint of this or an older facemath)."""
        self.variable.assign(state["variable"])
        self.active.assign(state["active"])
        self.generator.reset(seeds, int(state.get("draws", 0)))
        for var, value in zip(self.optimizer.variables, state["optimizer"], strict=True):
            var.assign(value)
        self.best_z.assign(state["best_z"])
        self.best_total.assign(state["best_total"])
        for name in self.names:
            if f"term_{name}" in state:
                self.best_terms[name].assign(state[f"term_{name}"])
            if f"failterm_{name}" in state:
                self.fail_values[name].assign(state[f"failterm_{name}"])
        self.last_improved.assign(np.asarray(state["last_improved"], np.int64))
        failed = np.full(self.failed_at.shape, -1, np.int64)
        for row, step in np.asarray(state["failed"], np.int64).reshape(-1, 2):
            failed[row] = step
        self.failed_at.assign(failed)
        self.step.assign(np.int64(state["step"]))

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        return self.best_z.numpy(), self.best_total.numpy()

    def snapshot(self) -> dict:
        """Everything needed to continue exactly here (resume.npz's per-batch state)."""
        import keras

        failed_at = self.failed_at.numpy()
        rows = np.nonzero(failed_at >= 0)[0]
        return {
            "variable": self.variable.numpy(),
            "active": self.active.numpy(),
            "draws": self.generator.draws.numpy(),
            "optimizer": [np.asarray(keras.ops.convert_to_numpy(v)) for v in self.optimizer.variables],
            "best_z": self.best_z.numpy(),
            "best_total": self.best_total.numpy(),
            "last_improved": self.last_improved.numpy(),
            "step": int(self.step.numpy()),
            "failed": np.stack([rows, failed_at[rows]], axis=1).astype(np.int64).reshape(-1, 2),
            **{f"term_{k}": v.numpy() for k, v in self.best_terms.items()},
            **{f"failterm_{k}": v.numpy() for k, v in self.fail_values.items()},
        }


class Projector:
    """Optimises z for batches of images with the configured plugins, through a backend.

    Every plugin it uses is looked up and its contract checked here, before any step runs (and before a job
    creates its output folder). The loop runs on the device: one compiled call runs up to K steps (a
    `tf.while_loop` over the step) and keeps the best z, each row's patience and its freezing in device
    variables; the host sees the loop only when a call returns (`Interval`), at checkpoints and at the end.

    Only the components are fixed here (`step_key`): steps, patience, tolerance and seeds are given per batch,
    so one projector (and its traced loops, one per batch size) serves every run of the same components.
    """

    def __init__(self, backend, registry, config: ProjectionConfig):
        if config.model not in MODELS:
            raise FacemathError(f"--model {config.model!r}: choose {', '.join(MODELS)}")
        for name, value in (
            ("--steps", config.steps),
            ("--restarts", config.restarts),
            ("--batch-size", config.batch_size),
        ):
            if value < 1:
                raise FacemathError(f"{name} {value}: must be at least 1")
        self.backend = backend
        self.model = MODELS[config.model]
        self.config, self.start = resolve_start(backend, config)  # the model's own encoder, by default
        self.init_component = registry.get("init", self.config.init, option="--init")
        self.init_params = check_params(self.init_component, self.config.init_params)
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
        if self.needs_discriminator and self.model not in S.DISCRIMINATOR_OF:
            names = ", ".join(c.label for _, c, _ in self.terms if c.needs_discriminator)
            raise FacemathError(f"{names} needs the GAN discriminator, and --model {config.model} has none")
        missing = [m for m in self.init_component.needs_models if not backend.has(m)]
        if missing:
            raise FacemathError(
                f"--init {self.config.init}: {self.init_component.label} needs the {', '.join(missing)} model "
                f"beside the {self.model} ({backend.describe()})"
            )
        self.init_extra = {}
        if self.init_component.needs_encoder:
            check_encoder(backend, self.model, f"--init {self.config.init}")
            self.init_extra = {"encode": lambda images: backend.encode_z(images, self.model)}
        self.init_extra.update(contracts.decoder_keyword(self.init_component, self.model))  # which decoder it starts
        encoded_terms = [(spec, c) for spec, c, _ in self.terms if c.needs_encoder]
        for spec, _ in encoded_terms:
            check_encoder(backend, self.model, f"--loss-plugin {spec.name}")
        self._calls = TracedCalls()  # plugin calls inside the step's tf.function, for one-line errors
        self._converted: dict = {}  # plugin function -> its AutoGraph conversion
        self.check_contracts()
        self.decoder = backend.differentiable_decoder(self.model)
        self.encoder = backend.differentiable_encoder(self.model) if encoded_terms else None
        self.fused = backend.fused_objective(self.model, self.terms)  # one call per step where the backend can
        self.notes = _unfused_notes(backend, self.model, self.terms, self.fused)  # said once by the command
        self.discriminator = (
            backend.differentiable_discriminator(S.DISCRIMINATOR_OF[self.model]) if self.needs_discriminator else None
        )
        self._loops: dict[int, _Loop] = {}  # batch size -> its device state and compiled loop

    def check_contracts(self) -> None:
        """Each loss term, the optimizer and the constraint once on tiny inputs: a broken plugin is one line
        naming it, before any work."""
        for _, component, params in self.terms:
            contracts.check_loss_term(component, params, self.image_size)
        contracts.check_optimizer(self.optimizer_component, self.optimizer_params, self.z_dim)
        contracts.check_constraint(self.constraint, self.constraint_params, self.z_dim, self.bound)
        setting = contracts.Setting(self.image_size, self.z_dim, self.bound, self.backend, self.model)
        contracts.check_initializer(self.init_component, self.init_params, setting, self.init_extra)

    def tracing_count(self) -> int:
        """How many times the compiled loops were traced: one per batch size (and kind of inputs), then never."""
        return sum(loop.advance.experimental_get_tracing_count() for loop in self._loops.values())

    # --- initialisation -------------------------------------------------------------------------------------

    def initial_z(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return contracts.initial_z(
            self.init_component, self.init_params, targets, self.z_dim, self.bound, rng, self.backend, self.init_extra
        )

    def seeded_initial_z(
        self, targets: np.ndarray, keys: list[str], restarts: int = 1, seed: int | None = None
    ) -> np.ndarray:
        """Each row's starting z from its own seed (--seed, the image's key, the restart; base/seeds.py), one
        image at a time, so a face starts where it would in any other batch. Rows i*K .. i*K+K-1 are image i's K
        restarts."""
        seed = self.config.seed if seed is None else seed
        rows = []
        for row, target in enumerate(targets):
            restart = row % restarts
            rng = image_rng(seed, keys[row // restarts], "init", restart)
            if restart and self.init_component.needs_encoder:
                # The first try starts at the encoder's z, the others at random points of the prior.
                rows.append(rng.uniform(-self.bound, self.bound, (1, self.z_dim)).astype(np.float32))
            else:
                rows.append(self.initial_z(target[None], rng))
        return np.concatenate(rows) if rows else np.zeros((0, self.z_dim), np.float32)

    # --- the objective --------------------------------------------------------------------------------------

    def _to_z(self, v):
        if self.constraint.to_z is None:
            return v
        to_z = self._graph(self.constraint.to_z)
        return self._calls.run(self.constraint, to_z, v, self.bound, **self.constraint_params)

    def _graph(self, function: Callable) -> Callable:
        """A plugin's function as `tf.function` would run it, converted by AutoGraph (Python `if` and loops on
        tensors become graph ops), once; one AutoGraph cannot convert is called as it is."""
        import tensorflow as tf

        if function not in self._converted:
            try:
                self._converted[function] = tf.autograph.to_graph(function)
            except Exception:  # noqa: BLE001 - e.g. a builtin or a C function: nothing to convert
                self._converted[function] = function
        return self._converted[function]

    def _objective(self, z, inputs: tuple):
        """(values per term, weighted total) per image at z, for a batch's inputs (`_inputs`)."""
        import tensorflow as tf

        if self.fused is not None:
            return self.fused(z, *inputs)
        target, mask = inputs
        images = self.decoder(z)
        logits = self.discriminator(images) if self.discriminator is not None else None
        latents = {"z": z, "encoded": self.encoder(images)} if self.encoder is not None else {}
        values = {
            spec.name: self._calls.run(
                component,
                self._graph(component.function),
                target,
                images,
                mask,
                logits,
                **(latents if component.needs_encoder else {}),
                **params,
            )
            for spec, component, params in self.terms
        }
        total = tf.add_n([spec.weight * values[spec.name] for spec, _, _ in self.terms])
        return values, total

    def _inputs(self, targets: np.ndarray, masks: np.ndarray) -> tuple:
        """A batch's targets and masks as the step takes them, once per batch: on the device for a local step;
        as they go on the wire for a backend's one-request step (uint8 pixels, no mask when every pixel is
        known, where the server takes them)."""
        import tensorflow as tf

        masks = np.asarray(masks, np.float32)[..., None]
        wire = getattr(self.fused, "wire", None)
        arrays = wire(np.asarray(targets, np.float32), masks) if wire is not None else (targets, masks)
        return tuple(tf.constant(a) for a in arrays)

    def energy(self, targets: np.ndarray, masks: np.ndarray) -> Energy:
        """The objective of these targets and masks as a function of z: what every step minimises, for a
        sampler that needs the same energy (all the loss terms, their weights, the masks, through this
        backend)."""
        inputs = self._inputs(targets, masks)
        return Energy(
            lambda z: self._objective(z, inputs), self.bound, self.constraint, self.constraint_params, self._calls
        )

    # --- the loop -------------------------------------------------------------------------------------------

    def _loop(self, n: int) -> _Loop:
        """The device state and compiled loop for batches of `n` images, built once per batch size and reset for
        every batch, so that tf.function traces one loop per shape rather than one per batch."""
        if n not in self._loops:
            with self._calls.guard("setting up the projection loop"):
                self._loops[n] = _Loop(self, n)
        return self._loops[n]

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
        *,
        steps: int | None = None,
        patience: int | None = None,
        tolerance: float | None = None,
        on_interval: Callable[[Interval], None] | None = None,
        stop: Callable[[], bool] | None = None,
        steps_per_call: int | None = None,
        report_seconds: float = REPORT_SECONDS,
    ) -> BatchResult:
        """Optimise one batch. `targets` (N, H, W, 3) in [-1, 1], `masks` (N, H, W) with 1 = known, `z0` (N, D).

        The loop runs on the device, `steps_per_call` steps per call (default: as many as take about
        `report_seconds`, starting with one), never past a checkpoint. After each call, `progress(step, mean,
        terms)` is called for every step it ran, then `on_interval(Interval)`, then `stop()`: True ends the batch
        with the best z so far. `on_checkpoint(state)` gets, every `checkpoint_every` steps, everything needed to
        continue (`state=`) exactly where it stopped. `steps`, `patience` and `tolerance` default to the config's.
        `seeds` (N, 2) seed each row's random draws (stochastic clipping; `facemath_core.base.seeds`); by
        default row i's come from --seed and i. Rows never mix: a row's result does not depend on the others in
        the batch, nor on how the steps were cut into calls.
        """
        import tensorflow as tf

        cfg = self.config
        steps = cfg.steps if steps is None else steps
        patience = cfg.patience if patience is None else patience
        tolerance = cfg.tolerance if tolerance is None else tolerance
        n = len(targets)
        if seeds is None:
            seeds = row_seeds(cfg.seed, [f"row {i}" for i in range(n)], 1, "constraint")
        start_value = z0
        if self.constraint.from_z is not None:
            with guard(self.constraint, "mapping the starting z"):
                start_value = self.constraint.from_z(z0, self.bound, **self.constraint_params)
        loop = self._loop(n)
        if state is not None:
            loop.restore(state, seeds)
            loop.settle(steps, patience, tolerance)
            done = int(state["step"])
        else:
            loop.reset(start_value, z0, seeds, steps, patience, tolerance)
            done = 0
        inputs = self._inputs(targets, masks)
        per_call = steps_per_call or 1
        stopped = False
        while done < steps:
            k = min(per_call, steps - done, MAX_STEPS_PER_CALL)
            if on_checkpoint is not None:
                k = min(k, checkpoint_every - done % checkpoint_every)  # come back at every checkpoint
            began = time.perf_counter()
            with self._calls.guard("in a projection step"):
                count = tf.constant(k, tf.int64)
                with _TRACING:  # traced once per batch size; later a lookup
                    advance = loop.advance.get_concrete_function(count, inputs)
                history = advance(count, inputs).numpy()
            taken = len(history)
            if steps_per_call is None and taken:
                per_step = (time.perf_counter() - began) / taken
                per_call = int(min(max(1, report_seconds / max(per_step, 1e-6)), 4 * per_call, MAX_STEPS_PER_CALL))
            rows = [
                (done + i + 1, float(row[0]), {name: float(v) for name, v in zip(loop.names, row[1:], strict=True)})
                for i, row in enumerate(history)
            ]
            done += taken
            if progress:
                for step, mean, terms in rows:
                    progress(step, mean, terms)
            if on_interval:
                on_interval(Interval(done, rows, loop.best))
            if taken < k:
                break  # every row has stopped
            if on_checkpoint and done % checkpoint_every == 0 and done < steps:
                on_checkpoint(loop.snapshot())
            if stop is not None and done < steps and stop():
                stopped = True
                break
        return self._result(loop, stopped)

    def _result(self, loop: _Loop, stopped: bool) -> BatchResult:
        snapshot = loop.snapshot()
        labels = {spec.name: component.label for spec, component, _ in self.terms}  # a NaN names its plugin
        failed = {int(row): int(step) for row, step in snapshot["failed"]}
        failed_terms = {
            row: [
                f"{labels[name]} = {snapshot[f'failterm_{name}'][row]:g}"
                for name in loop.names
                if not np.isfinite(snapshot[f"failterm_{name}"][row])
            ]
            for row in failed
        }
        return BatchResult(
            z=snapshot["best_z"],
            total=snapshot["best_total"],
            terms={name: snapshot[f"term_{name}"] for name in loop.names},
            steps=snapshot["step"],
            failed=failed,
            state=snapshot,
            failed_terms=failed_terms,
            stopped=stopped,
        )


class ProjectorCache:
    """Projectors kept for the next run of the same components (`step_key`): it starts with the traced loops and
    checked contracts of the last one, so its first step comes at once. A projector is lent to one run at a time
    (its device state is that run's), so runs at the same time each get their own; at most `keep` idle ones are
    kept, the least recently used go first. Thread-safe: the studio's sessions share one."""

    def __init__(self, backend, registry, keep: int = 4):
        self.backend, self.registry, self.keep = backend, registry, keep
        self._idle: OrderedDict[str, list[Projector]] = OrderedDict()
        self._lock = threading.Lock()
        self.built = 0  # projectors built so far: the rest of the runs reused one

    def borrow(self, config: ProjectionConfig) -> Projector:
        key = step_key(resolve_start(self.backend, config)[0])
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                self._idle.move_to_end(key)
                return idle.pop()
        projector = Projector(self.backend, self.registry, config)  # outside the lock: it checks every contract
        with self._lock:
            self.built += 1
        return projector

    def give_back(self, projector: Projector) -> None:
        key = step_key(projector.config)
        with self._lock:
            self._idle.setdefault(key, []).append(projector)
            self._idle.move_to_end(key)
            while sum(len(v) for v in self._idle.values()) > self.keep:
                oldest = next(iter(self._idle))
                self._idle[oldest].pop(0)
                if not self._idle[oldest]:
                    del self._idle[oldest]


def step_key(config: ProjectionConfig) -> str:
    """What a projector's compiled step depends on: the model and the components with their parameters (not the
    steps, seed, batch size, patience, mask or blender, which each run brings)."""
    fields = ("model", "losses", "optimizer", "optimizer_params", "constraint", "constraint_params")
    d = config.to_dict()
    return json.dumps({k: d[k] for k in (*fields, "init", "init_params")}, sort_keys=True, default=str)


def resolve_start(backend, config: ProjectionConfig) -> tuple[ProjectionConfig, str]:
    """The starting point of a run, and how to say it. `init=None` (the default of `project`, `complete` and the
    studio) is the best start: the model's own encoder (`gan_encoder` for the generator, `vae_encoder` for the
    VAE decoder) when the backend has one trained for the decoder version in use, else uniform random z."""
    model = MODELS.get(config.model)
    encoder = ENCODER_OF.get(model)
    if config.init is not None:
        return config, _start_words(backend, config.init, model, config.restarts)
    if encoder is not None and backend.has(encoder):
        try:
            check_encoder(backend, model, "--init encoder")
        except FacemathError as exc:
            why = str(exc).split(": ", 1)[-1].split(";")[0]
            return replace(config, init="uniform"), f"uniform random z ({why})"
        chosen = replace(config, init="encoder")
        words = _start_words(backend, "encoder", model, config.restarts)
        return chosen, f"{words} (the model's own encoder; --init uniform for the papers' random start)"
    return replace(config, init="uniform"), f"uniform random z (the models have no {encoder})"


def _start_words(backend, init: str, model: str | None, restarts: int) -> str:
    if init == "encoder" and model in ENCODER_OF:
        encoder = ENCODER_OF[model]
        words = f"E(x) of {encoder} version {backend.version(encoder)}"
        return words + (f", the other {restarts - 1} restarts at uniform random z" if restarts > 1 else "")
    if init in ("uniform", "normal"):
        return f"{init} random z"
    return f"the {init} init"


def _unfused_notes(backend, model: str, terms: list, fused) -> list[str]:
    """Why a run takes the slow path: when only third-party loss terms keep the backend from running each step as
    one request (a server's projector model has the built-in terms only), say which, once."""
    if fused is not None:
        return []
    builtin = [t for t in terms if getattr(t[1].provider, "distribution", None) == "facemath"]
    others = [component.label for _, component, _ in terms if all(component is not b[1] for b in builtin)]
    if not others or backend.fused_objective(model, builtin) is None:
        return []
    return [
        f"{', '.join(others)}: not a term of {backend.describe()}'s projector model, so each step takes the "
        f"generator's and discriminator's requests (up to 3) instead of 1"
    ]


def with_preset(config: ProjectionConfig, preset: str | None) -> ProjectionConfig:
    if preset is None:
        return config
    if preset not in PRESETS:
        raise FacemathError(f"--preset {preset}: unknown preset; known: {', '.join(PRESETS)}")
    return replace(config, preset=preset, **PRESETS[preset])
