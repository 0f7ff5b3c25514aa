"""The contracts that docs/plugins.md states for each kind of component, checked before the first step.

A plugin that breaks one is reported as one line naming the component, its provider and what is wrong, before any
output folder exists: a loss term is traced inside `tf.function` on a tiny batch (a float tensor of shape (B,),
finite, differentiable), an optimizer must return an optimizer, a mask its shape with values in [0, 1], a blender
the image's shape with finite values, an initialiser (N, z_dim), a constraint the variable's shape, and an
operator must take the arguments it is given where it is used.
"""

from __future__ import annotations

import inspect

import numpy as np

from facemath_core.base.errors import FacemathError, PluginError
from facemath_core.base.seeds import RowGenerator, row_seeds
from facemath_core.host.components import Component
from facemath_core.host.manager import TracedCalls, guard

CHECK_BATCH = 2


def check_signature(component: Component, positional: int, params: dict, call: str) -> None:
    """`function` must accept `positional` arguments plus `params` as keywords (clearer than a TypeError later)."""
    _check_callable(component, component.function, positional, params, call)


def _check_callable(component: Component, function, positional: int, params: dict, call: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: let the call itself tell
        return
    try:
        signature.bind(*([None] * positional), **params)
    except TypeError as exc:
        name = getattr(function, "__name__", "function")
        raise PluginError(f"{component.label}: {name}{signature} cannot be called as {call} ({exc})") from None


def _describe(value) -> str:
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {getattr(dtype, 'name', dtype)}"
    return f"{type(value).__name__} {value!r}"[:80]


def _not_finite(values: np.ndarray) -> str:
    return "NaN" if np.isnan(values).any() else "an infinite value"


# --- loss terms -----------------------------------------------------------------------------------------------


def check_batch(image_size: int, batch: int = CHECK_BATCH, seed: int = 0):
    """A tiny batch shaped like the real one: targets, generated images, a mask with a hole, logits (numpy)."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, (batch, image_size, image_size, 3)).astype(np.float32)
    generated = rng.uniform(-0.9, 0.9, (batch, image_size, image_size, 3)).astype(np.float32)
    mask = np.ones((batch, image_size, image_size, 1), np.float32)
    quarter = image_size // 4
    mask[:, quarter : image_size - quarter, quarter : image_size - quarter] = 0.0
    logits = rng.normal(size=batch).astype(np.float32)
    return target, generated, mask, logits


LOSS_CALL = "function(target, generated, mask, disc_logits, **params)"


def check_loss_term(component, params: dict, image_size: int) -> None:
    """Trace the term inside `tf.function`, as the step runs it, on a tiny batch; check what it returns."""
    import tensorflow as tf

    latents = {"z": None, "encoded": None} if component.needs_encoder else {}
    check_signature(component, 4, {**params, **latents}, LOSS_CALL)
    target, generated, mask, logits = check_batch(image_size)
    generated, logits = tf.Variable(generated), tf.Variable(logits)
    rng = np.random.default_rng(1)
    z, encoded = (tf.Variable(rng.uniform(-1, 1, (CHECK_BATCH, 8)).astype(np.float32)) for _ in range(2))
    calls = TracedCalls()

    @tf.function
    def traced(target, mask):
        # Symbolic tensors computed from the variables, as G(z) and D(G(z)) are in the step.
        images = tf.identity(generated)
        disc_logits = tf.identity(logits) if component.needs_discriminator else None
        extra = {"z": tf.identity(z), "encoded": tf.identity(encoded)} if component.needs_encoder else {}
        return calls.call(component, target, images, mask, disc_logits, **extra, **params)

    with calls.guard("on a check batch"), tf.GradientTape(persistent=True) as tape:
        value = traced(tf.constant(target), tf.constant(mask))
    expected = f"a float tensor of shape ({CHECK_BATCH},): one value per image"
    if value is None or not tf.is_tensor(value):
        raise PluginError(f"{component.label} returned {_describe(value)}, expected {expected}")
    if not value.dtype.is_floating:
        raise PluginError(f"{component.label} returned a tensor of dtype {value.dtype.name}, expected {expected}")
    if tuple(value.shape) != (CHECK_BATCH,):
        raise PluginError(
            f"{component.label} returned shape {tuple(value.shape)} for a batch of {CHECK_BATCH}, expected {expected}"
        )
    numbers = value.numpy()
    # NaN for some images can depend on the image (the run then stops those images and names the term);
    # NaN for every image of ordinary inputs is a broken term.
    if not np.isfinite(numbers).any():
        raise PluginError(
            f"{component.label} returned {_not_finite(numbers)} for every image of a check batch of ordinary images"
        )
    with calls.guard("computing its gradient"):
        gradients = tape.gradient(value, [generated, logits, z, encoded])
    if all(g is None for g in gradients):
        wrt = "generated or disc_logits" if component.needs_discriminator else "generated"
        wrt += ", z or encoded" if component.needs_encoder else ""
        raise PluginError(
            f"{component.label} has no gradient with respect to {wrt} (use differentiable TensorFlow ops)"
        )


# --- optimizers -----------------------------------------------------------------------------------------------


OPTIMIZER_API = ("apply_gradients", "build")


def make_optimizer(component, params: dict):
    """Call the optimizer plugin and check it returned something with the Keras optimizer API."""
    check_signature(component, 0, params, "function(**params)")
    with guard(component):
        optimizer = component.function(**params)
    missing = [a for a in OPTIMIZER_API if not callable(getattr(optimizer, a, None))]
    if missing or not hasattr(optimizer, "variables"):
        raise PluginError(
            f"{component.label} returned {_describe(optimizer)}, expected a Keras optimizer "
            f"(an object with apply_gradients, build and variables)"
        )
    return optimizer


# --- initialisers and constraints -----------------------------------------------------------------------------


def initial_z(
    component, params: dict, targets, z_dim: int, bound: float, rng, backend, extra: dict | None = None
) -> np.ndarray:
    """Call the initialiser (with `extra` keywords: `encode` for one that `needs_encoder`); its z must be
    (N, z_dim) and finite; the core keeps it inside the box."""
    extra = extra or {}
    check_signature(component, 5, {**params, **extra}, "function(targets, z_dim, bound, rng, backend, **params)")
    with guard(component):
        z = component.function(targets, z_dim, bound, rng, backend, **extra, **params)
    try:
        z = np.asarray(z, np.float32)
    except (TypeError, ValueError):
        raise PluginError(f"{component.label} returned {_describe(z)}, expected z of shape (N, z_dim)") from None
    if z.shape != (len(targets), z_dim):
        raise PluginError(f"{component.label} returned shape {z.shape}, expected {(len(targets), z_dim)}")
    if not np.isfinite(z).all():
        raise PluginError(f"{component.label} returned {_not_finite(z)} in z")
    return np.clip(z, -bound, bound)


CONSTRAINT_CALL = "function(variable, bound, generator, **params)"


def check_constraint(component, params: dict, z_dim: int, bound: float) -> None:
    """Trace the constraint's functions inside `tf.function` on a variable partly outside the box."""
    import tensorflow as tf

    check_signature(component, 3, params, CONSTRAINT_CALL)
    for extra in ("to_z", "from_z"):
        if getattr(component, extra) is not None:
            _check_callable(component, getattr(component, extra), 2, params, f"{extra}(value, bound, **params)")
    start = np.linspace(-2 * bound, 2 * bound, CHECK_BATCH * z_dim, dtype=np.float32).reshape(CHECK_BATCH, z_dim)

    generator = RowGenerator(CHECK_BATCH)  # what the projection loop passes: per-row draws
    generator.reset(row_seeds(0, [str(i) for i in range(CHECK_BATCH)], 1, "check"))
    calls = TracedCalls()

    @tf.function
    def traced(value):
        projected = calls.call(component, value, bound, generator, **params)
        return projected if component.to_z is None else calls.run(component, component.to_z, projected, bound, **params)

    with calls.guard("on a check variable"):
        if component.from_z is not None:
            inside = np.clip(start, -bound, bound)
            start = np.asarray(calls.run(component, component.from_z, inside, bound, **params), np.float32)
        out = traced(tf.constant(start))
    if not tf.is_tensor(out) or tuple(out.shape) != start.shape or not out.dtype.is_floating:
        raise PluginError(
            f"{component.label} returned {_describe(out)}, expected a float tensor of shape {start.shape}"
        )
    if not np.isfinite(out.numpy()).all():
        raise PluginError(f"{component.label} returned {_not_finite(out.numpy())} for a variable outside the box")


# --- masks and blenders ---------------------------------------------------------------------------------------


def _array_of_shape(component, value, shape: tuple, image_name: str) -> np.ndarray:
    """What a mask or blender returned, as float32 of the expected shape, or an error naming the plugin."""
    try:
        array = np.asarray(value, np.float32)
    except (TypeError, ValueError):
        raise PluginError(f"{component.label} returned {_describe(value)} for {image_name}, expected {shape}") from None
    if array.shape != shape:
        raise PluginError(f"{component.label} returned shape {array.shape} for {image_name}, expected {shape}")
    return array


MASK_CALL = "function(shape, rng, image_name, **params)"


def make_mask(component, params: dict, shape: tuple[int, int], rng, image_name: str) -> np.ndarray:
    """Call the mask plugin for one image; the mask must be `shape` with finite values in [0, 1]."""
    check_signature(component, 3, params, MASK_CALL)
    with guard(component, f"for {image_name}"):
        mask = component.function(shape, rng, image_name, **params)
    mask = _array_of_shape(component, mask, tuple(shape), image_name)
    if not np.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise PluginError(
            f"{component.label} returned values outside [0, 1] for {image_name} "
            f"(min {np.nanmin(mask):g}, max {np.nanmax(mask):g}); 1 marks a known pixel, 0 a missing one"
        )
    return mask


BLENDER_CALL = "function(target, generated, mask, **params)"


def blend(component, params: dict, target: np.ndarray, generated: np.ndarray, mask: np.ndarray, image_name: str):
    """Call the blender for one image; the result must be the image's shape and finite."""
    check_signature(component, 3, params, BLENDER_CALL)
    with guard(component, f"for {image_name}"):
        out = component.function(target, generated, mask, **params)
    out = _array_of_shape(component, out, target.shape, image_name)
    if not np.isfinite(out).all():
        raise PluginError(f"{component.label} returned {_not_finite(out)} for {image_name}")
    return out


def interpolate(component, a: np.ndarray, b: np.ndarray, ts) -> np.ndarray:
    """The operator's op(a, b, t) for each t, as (T, D) float32 (check_operator(component, 3, ...) first); a result
    that is not a finite latent of a's shape is the plugin's error."""
    with guard(component):
        path = [np.asarray(component.function(a, b, t, **component.defaults), np.float32) for t in ts]
    if any(p.shape != a.shape or not np.isfinite(p).all() for p in path):
        raise PluginError(f"{component.label} did not return a finite latent of shape {a.shape}")
    return np.stack(path) if path else np.zeros((0, *a.shape), np.float32)


def check_blender(component, params: dict, image_size: int) -> None:
    """Blend one check image with a hole, before any work."""
    target, generated, mask, _ = check_batch(image_size, batch=1)
    blend(component, params, target[0], generated[0], mask[0, ..., 0], "a check image")


# --- operators ------------------------------------------------------------------------------------------------


def check_operator(component, arguments: int, where: str) -> None:
    """An operator used with `arguments` positional arguments (e.g. `interpolate` calls op(a, b, t))."""
    if component.arity is not None and component.arity != arguments:
        plural = "s" if component.arity != 1 else ""
        raise FacemathError(
            f"{where}: {component.label} takes {component.arity} argument{plural}; this needs one taking {arguments}"
        )
    check_signature(component, arguments, dict(component.defaults), f"function({arguments} arguments)")
