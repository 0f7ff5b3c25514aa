"""The contracts that docs/plugins.md states for each kind of component: static ones, checked when a plugin is
registered, and run-time ones, checked on tiny inputs before the first step of a run (and by `facemath plugins
--check` and `facemath_core.testing.check_component`, which run the same functions).

A plugin that breaks one is reported as one line naming the component, its provider and what is wrong, before any
output folder exists.

- static (`check_static`): the function's signature takes the call of its kind with the parameters as keywords;
  the declared parameters are consistent (a default its own choices or range refuse); the fields have their types.
- run time: a loss term is traced inside `tf.function` on a tiny batch (a float tensor of shape (B,), finite,
  differentiable), an optimizer must return an optimizer whose `apply_gradients` works inside `tf.function`, a mask
  its shape with values in [0, 1], a blender the image's shape with finite values, an initialiser (N, z_dim), a
  constraint the variable's shape, an operator a finite latent, and a face detector faces with a box, five
  landmarks and a score (one face at least on scikit-image's astronaut photo), and a sampler z of shape
  (N, samples, D) inside the box with acceptance rates in [0, 1], on a quadratic check energy.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass

import numpy as np

from facemath_core.base.errors import PluginError
from facemath_core.base.seeds import RowGenerator, row_seeds
from facemath_core.host.components import (
    Component,
    Constraint,
    DetectedFace,
    Initializer,
    LossTerm,
    Operator,
)
from facemath_core.host.guard import TracedCalls, guard, guarded_object
from facemath_core.host.schema import schema_problems

CHECK_BATCH = 2


@dataclass(frozen=True)
class Setting:
    """What the run-time checks shape their inputs like: the model's image size, z size and prior box, the backend
    (None: checks that need models are skipped) and the decoder projected onto."""

    image_size: int = 32
    z_dim: int = 8
    bound: float = 1.0
    backend: object | None = None
    decoder: str = "generator"


def check_signature(component: Component, positional: int, params: dict, call: str) -> None:
    """`function` must accept `positional` arguments plus `params` as keywords (clearer than a TypeError later)."""
    _check_callable(component, component.function, positional, params, call)


def _signature(function) -> inspect.Signature:
    """`inspect.signature`, once per function: every command registers the same plugin functions again."""
    try:
        return _cached_signature(function)
    except TypeError:  # an unhashable callable object
        return inspect.signature(function)


_cached_signature = functools.lru_cache(maxsize=4096)(inspect.signature)


def _check_callable(component: Component, function, positional: int, params: dict, call: str) -> None:
    try:
        signature = _signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: let the call itself tell
        return
    try:
        signature.bind(*([None] * positional), **params)
    except TypeError as exc:
        name = getattr(function, "__name__", "function")
        raise PluginError(f"{component.label}: {name}{signature} cannot be called as {call} ({exc})") from None


def accepts_keyword(function, name: str) -> bool:
    """Whether `function` has a parameter called `name` (how an initialiser asks for the `decoder`)."""
    try:
        parameter = _signature(function).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)


# --- static checks, at registration ---------------------------------------------------------------------------


def check_static(component: Component) -> None:
    """What can be refused without running anything: field types, the declared parameters, and the function's
    signature against its kind's call with the parameters as keywords (and the keywords the core adds)."""
    problems = _field_problems(component) + schema_problems(component)
    if problems:
        raise PluginError(f"{component.label}: {'; '.join(problems)}")
    params = dict(component.defaults)
    if isinstance(component, Operator):
        if component.arity is not None:
            check_signature(component, component.arity, params, f"function({component.arity} arguments, **params)")
        else:
            _bind_keywords(component, component.function, params, component.call)
        return
    extra = dict(component.keywords())
    if isinstance(component, Initializer) and accepts_keyword(component.function, "decoder"):
        extra["decoder"] = None
    check_signature(component, component.positional or 0, {**params, **extra}, component.call)
    if isinstance(component, Constraint):
        for name in ("to_z", "from_z"):
            function = getattr(component, name)
            if function is not None:
                _check_callable(component, function, 2, params, f"{name}(value, bound, **params)")


def _bind_keywords(component: Component, function, params: dict, call: str) -> None:
    try:
        _signature(function).bind_partial(**params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError):
            return
        name = getattr(function, "__name__", "function")
        raise PluginError(f"{component.label}: {name} cannot be called as {call} ({exc})") from None


def _field_problems(component: Component) -> list[str]:
    problems = []
    if not isinstance(component.help, str):
        problems.append(f"help is {type(component.help).__name__}, not text")
    if isinstance(component, LossTerm):
        weight = component.default_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
            problems.append(f"default_weight {weight!r} is not a finite number >= 0")
    if isinstance(component, Operator) and component.arity is not None:
        if isinstance(component.arity, bool) or not isinstance(component.arity, int) or component.arity < 0:
            problems.append(f"arity {component.arity!r} is not a whole number >= 0 (or None for any)")
    if isinstance(component, Initializer):
        needs = component.needs_models
        if isinstance(needs, str) or not all(isinstance(m, str) for m in needs):
            problems.append(f"needs_models {needs!r} is not a tuple of model names")
    if isinstance(component, Constraint):
        for name in ("to_z", "from_z"):
            if getattr(component, name) is not None and not callable(getattr(component, name)):
                problems.append(f"{name} is not callable")
    for name in ("needs_discriminator", "needs_encoder"):
        if hasattr(component, name) and not isinstance(getattr(component, name), bool):
            problems.append(f"{name} {getattr(component, name)!r} is not True or False")
    return problems


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


def make_optimizer(component, params: dict, calls: TracedCalls | None = None):
    """Call the optimizer plugin and check it returned something with the Keras optimizer API. What its
    `apply_gradients` and `build` raise later is reported against it (through `calls` while tracing)."""
    check_signature(component, 0, params, "function(**params)")
    with guard(component):
        optimizer = component.function(**params)
    missing = [a for a in OPTIMIZER_API if not callable(getattr(optimizer, a, None))]
    if missing or not hasattr(optimizer, "variables"):
        raise PluginError(
            f"{component.label} returned {_describe(optimizer)}, expected a Keras optimizer "
            f"(an object with apply_gradients, build and variables)"
        )
    return guarded_object(component, optimizer, OPTIMIZER_API, calls)


def check_optimizer(component, params: dict, z_dim: int) -> None:
    """Make the optimizer, build it for a (2, z_dim) variable and trace one `apply_gradients` inside
    `tf.function`, as the step does: the variable must stay finite and its variables be assignable tensors."""
    import tensorflow as tf

    calls = TracedCalls()
    optimizer = make_optimizer(component, params, calls)
    variable = tf.Variable(np.zeros((CHECK_BATCH, z_dim), np.float32))
    with calls.guard("building its state for a check variable"):
        optimizer.build([variable])

    @tf.function
    def step(gradient):
        optimizer.apply_gradients([(gradient, variable)])
        return tf.identity(variable)

    gradient = np.linspace(-1, 1, CHECK_BATCH * z_dim, dtype=np.float32).reshape(CHECK_BATCH, z_dim)
    with calls.guard("applying a check gradient"):
        updated = step(tf.constant(gradient))
    if not np.isfinite(updated.numpy()).all():
        raise PluginError(f"{component.label} made the check variable {_not_finite(updated.numpy())}")
    try:
        state = list(optimizer.variables)
        for v in state:
            v.assign(v)  # what the projection loop does to reset the state for each batch
    except Exception as exc:
        raise PluginError(
            f"{component.label}: its variables must be a list of variables the loop can reset "
            f"({type(exc).__name__}: {exc})"
        ) from exc


# --- initialisers and constraints -----------------------------------------------------------------------------


def decoder_keyword(component, decoder: str) -> dict:
    """`{"decoder": NAME}` for an initialiser whose function asks for it, else {}."""
    return {"decoder": decoder} if accepts_keyword(component.function, "decoder") else {}


def initial_z(
    component, params: dict, targets, z_dim: int, bound: float, rng, backend, extra: dict | None = None
) -> np.ndarray:
    """Call the initialiser (with `extra` keywords: `encode` for one that `needs_encoder`, `decoder` for one that
    asks); its z must be (N, z_dim) and finite; the core keeps it inside the box."""
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


def interpolate(component, a: np.ndarray, b: np.ndarray, ts, params: dict | None = None) -> np.ndarray:
    """The operator's op(a, b, t) for each t, as (T, D) float32 (check_operator(component, 3, ...) first); a result
    that is not a finite latent of a's shape is the plugin's error. `params`: its parameters (default: defaults)."""
    params = dict(component.defaults) if params is None else params
    path = [apply_operator(component, [a, b, t], params, a.shape) for t in ts]
    return np.stack(path) if path else np.zeros((0, *a.shape), np.float32)


def apply_operator(component, args: list, params: dict, shape: tuple, where: str = "") -> np.ndarray:
    """One call of an operator; what it raises, and a result that is not a finite latent of `shape`, is the
    plugin's error (`where`, e.g. an expression's column, leads the message)."""
    lead = f"{where}: " if where else ""
    try:
        with guard(component):
            result = component.function(*args, **params)
    except PluginError as exc:
        raise PluginError(f"{lead}{exc}") from exc.__cause__
    try:
        result = np.asarray(result, np.float32)
    except (TypeError, ValueError):
        raise PluginError(f"{lead}{component.label} returned {_describe(result)}, expected a latent") from None
    if result.shape != tuple(shape) or not np.isfinite(result).all():
        got = f"shape {result.shape}" if result.shape != tuple(shape) else _not_finite(result)
        raise PluginError(f"{lead}{component.label} returned {got}, expected a finite latent of shape {tuple(shape)}")
    return result


def check_blender(component, params: dict, image_size: int) -> None:
    """Blend one check image with a hole, before any work."""
    target, generated, mask, _ = check_batch(image_size, batch=1)
    blend(component, params, target[0], generated[0], mask[0, ..., 0], "a check image")


# --- operators ------------------------------------------------------------------------------------------------


def check_operator(component, arguments: int, where: str, params: dict | None = None) -> None:
    """An operator used with `arguments` positional arguments (e.g. `interpolate` calls op(a, b, t))."""
    if component.arity is not None and component.arity != arguments:
        plural = "s" if component.arity != 1 else ""
        raise PluginError(
            f"{where}: {component.label} takes {component.arity} argument{plural}; this needs one taking {arguments}"
        )
    params = dict(component.defaults) if params is None else params
    check_signature(component, arguments, params, f"function({arguments} arguments)")


def check_operator_call(component, params: dict, z_dim: int) -> None:
    """Call the operator on check latents of size `z_dim` (`arity` of them, 2 for any): all latents, or, for an
    operator whose last argument is a number (lerp's t), with 0.5 last. It must return a finite latent."""
    rng = np.random.default_rng(0)
    count = component.arity if component.arity is not None else 2
    latents = [rng.uniform(-1, 1, z_dim).astype(np.float32) for _ in range(count)]
    tries = [latents, latents[:-1] + [0.5]] if count else [latents]
    failure = None
    for args in tries:
        try:
            apply_operator(component, args, params, (z_dim,))
            return
        except PluginError as exc:
            failure = failure or exc
    raise PluginError(f"{failure} (called on check latents of size {z_dim})") from failure.__cause__


# --- face detectors -------------------------------------------------------------------------------------------


DETECTOR_CALL = "function(image, min_face, **params)"


def _face(component, value, shape: tuple, image_name: str, i: int) -> DetectedFace:
    """One face a detector returned, as a DetectedFace, or the plugin's error naming what is wrong."""
    where = f"{component.label} returned for {image_name}, face {i + 1}"
    if isinstance(value, DetectedFace):
        box, landmarks, score = value.box, value.landmarks, value.score
    elif hasattr(value, "get") and hasattr(value, "keys"):
        box, landmarks, score = value.get("box"), value.get("landmarks"), value.get("score")
    else:
        raise PluginError(f"{where}: {_describe(value)}, expected a DetectedFace (box, landmarks, score)")
    try:
        box = np.asarray(box, np.float64).reshape(-1)
        landmarks = np.asarray(landmarks, np.float64)
        score = float(score)
    except (TypeError, ValueError):
        raise PluginError(f"{where}: box, landmarks and score must be numbers") from None
    if box.shape != (4,) or not np.isfinite(box).all() or not (box[0] < box[2] and box[1] < box[3]):
        raise PluginError(f"{where}: box {box.tolist()} is not (x0, y0, x1, y1) with x0 < x1 and y0 < y1")
    if landmarks.shape != (5, 2) or not np.isfinite(landmarks).all():
        raise PluginError(
            f"{where}: landmarks of shape {landmarks.shape}, expected 5 finite (x, y) points "
            f"({', '.join(DetectedFace.LANDMARKS)})"
        )
    if not math.isfinite(score):
        raise PluginError(f"{where}: score {score} is not a finite number")
    height, width = shape[:2]
    margin = max(box[2] - box[0], box[3] - box[1])  # a face cut by the border may have a point just outside
    outside = (landmarks[:, 0] < -margin) | (landmarks[:, 0] > width + margin)
    outside |= (landmarks[:, 1] < -margin) | (landmarks[:, 1] > height + margin)
    if outside.any():
        points = landmarks.round(1).tolist()
        raise PluginError(f"{where}: landmarks {points} lie far outside the {width}x{height} image")
    return DetectedFace(tuple(box.tolist()), tuple(map(tuple, landmarks.tolist())), score)


def detect(component, params: dict, image: np.ndarray, min_face: int, image_name: str) -> list[DetectedFace]:
    """Call the detector on one upright RGB uint8 photo; what it returns must be a list of faces (box, five
    landmarks, score), each checked, in the order the detector gave them."""
    check_signature(component, 2, params, DETECTOR_CALL)
    with guard(component, f"on {image_name}"):
        found = component.function(image, int(min_face), **params)
    if found is None or isinstance(found, str | bytes | dict) or not hasattr(found, "__iter__"):
        raise PluginError(f"{component.label} returned {_describe(found)} for {image_name}, expected a list of faces")
    return [_face(component, face, image.shape, image_name, i) for i, face in enumerate(found)]


def check_detector(component, params: dict) -> None:
    """Detect on two check images: a flat grey one (a list, empty or not, of well-formed faces) and scikit-image's
    astronaut photo (a real photo nobody here made, with one face of about 100 pixels: at least one face whose
    landmarks lie inside its box, give or take half its size)."""
    from skimage import data as photos  # scikit-image's bundled photos: deferred until a detector is checked

    detect(component, params, np.full((96, 128, 3), 128, np.uint8), 20, "a flat grey check image")
    faces = detect(component, params, photos.astronaut(), 20, "the check photo (scikit-image's astronaut)")
    if not faces:
        raise PluginError(f"{component.label} found no face on the check photo (scikit-image's astronaut, one face)")
    for face in faces:
        x0, y0, x1, y1 = face.box
        slack = 0.5 * face.size
        points = np.asarray(face.landmarks)
        if ((points < [x0 - slack, y0 - slack]) | (points > [x1 + slack, y1 + slack])).any():
            raise PluginError(
                f"{component.label}: on the check photo, landmarks {points.round(1).tolist()} lie outside their "
                f"face's box {[round(v, 1) for v in face.box]}"
            )


# --- samplers -------------------------------------------------------------------------------------------------


SAMPLER_CALL = "function(energy, z0, bound, rng, samples, **params)"


def draw_samples(component, params: dict, energy, z0: np.ndarray, bound: float, rng, samples: int, where: str):
    """Call the sampler for one batch (`where` names it in errors): its z must be (N, samples, D), finite and
    inside the box, its acceptance rates (N,) in [0, 1]. Returns them as float32 z and float64 rates."""
    check_signature(component, 5, params, SAMPLER_CALL)
    z0 = np.asarray(z0, np.float64)
    with guard(component, f"for {where}"):
        result = component.function(energy, z0, bound, rng, samples, **params)
    try:
        z, acceptance = result
        z, acceptance = np.asarray(z, np.float64), np.asarray(acceptance, np.float64)
    except (TypeError, ValueError):
        raise PluginError(
            f"{component.label} returned {_describe(result)} for {where}, expected (z, acceptance)"
        ) from None
    n, d = z0.shape
    if z.shape != (n, samples, d) or acceptance.shape != (n,):
        raise PluginError(
            f"{component.label} returned z of shape {z.shape} and acceptance of shape {acceptance.shape} for "
            f"{where}, expected {(n, samples, d)} and {(n,)}"
        )
    if not np.isfinite(z).all():
        raise PluginError(f"{component.label} returned {_not_finite(z)} in z for {where}")
    if (np.abs(z) > bound * (1 + 1e-6)).any():
        raise PluginError(f"{component.label} returned z outside the box [-{bound:g}, {bound:g}] for {where}")
    if not (np.isfinite(acceptance) & (acceptance >= 0) & (acceptance <= 1)).all():
        raise PluginError(f"{component.label} returned acceptance rates outside [0, 1] for {where}")
    return z.astype(np.float32), acceptance


def check_sampler(component, params: dict, z_dim: int, bound: float) -> None:
    """Draw 2 samples per row for 2 rows on U(z) = |z|^2 / 2 from a start near the box's wall."""

    def energy(z):
        z = np.asarray(z, np.float64)
        return 0.5 * np.sum(z * z, axis=1), z

    z0 = np.linspace(-0.9 * bound, 0.9 * bound, CHECK_BATCH * z_dim).reshape(CHECK_BATCH, z_dim)
    draw_samples(component, params, energy, z0, bound, np.random.default_rng(0), 2, "a check energy")


# --- every check of a component -------------------------------------------------------------------------------


def check_initializer(component, params: dict, setting: Setting, extra: dict | None = None) -> np.ndarray | None:
    """Start one check image; None when the initialiser needs models and `setting` has no backend."""
    if setting.backend is None and (component.needs_models or component.needs_encoder):
        return None
    extra = dict(extra or {})
    if component.needs_encoder and "encode" not in extra:
        backend, decoder = setting.backend, setting.decoder
        extra["encode"] = lambda images: backend.encode_z(images, decoder)
    extra.update(decoder_keyword(component, setting.decoder))
    target, _, _, _ = check_batch(setting.image_size, batch=1)
    rng = np.random.default_rng(0)
    return initial_z(component, params, target, setting.z_dim, setting.bound, rng, setting.backend, extra)


def _check_mask(component, params: dict, setting: Setting) -> None:
    make_mask(component, params, (setting.image_size, setting.image_size), np.random.default_rng(0), "check.png")


RUNTIME_CHECKS = {
    "loss": lambda c, params, s: check_loss_term(c, params, s.image_size),
    "optimizer": lambda c, params, s: check_optimizer(c, params, s.z_dim),
    "operator": lambda c, params, s: check_operator_call(c, params, s.z_dim),
    "mask": _check_mask,
    "blender": lambda c, params, s: check_blender(c, params, s.image_size),
    "init": lambda c, params, s: check_initializer(c, params, s),
    "constraint": lambda c, params, s: check_constraint(c, params, s.z_dim, s.bound),
    "detector": lambda c, params, s: check_detector(c, params),
    "sampler": lambda c, params, s: check_sampler(c, params, s.z_dim, s.bound),
}


def check_component(component: Component, params: dict | None = None, setting: Setting | None = None) -> None:
    """Every contract of the component's kind, static and run time, as a run checks them: a broken one raises the
    PluginError a run would. `params` override its defaults (typed by the caller: `schema.check_params`). A kind
    without a run-time check (a new one) gets the static checks."""
    check_static(component)
    values = {**component.defaults, **(params or {})}
    runtime = RUNTIME_CHECKS.get(component.kind)
    if runtime is not None:
        runtime(component, values, setting or Setting())
