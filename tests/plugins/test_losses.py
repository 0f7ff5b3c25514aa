"""A contract every registered loss term must keep (after TF-GAN's shared loss tests), and the built-ins' values."""

import numpy as np
import pytest
import tensorflow as tf

from facemath_core.host.manager import load_registry

REGISTRY = load_registry(builtins_only=True)  # independent of whatever else is installed
TERMS = REGISTRY.names("loss")
SIZE = 16


def inputs(seed=0, batch=3, hole=True, dtype=tf.float32):
    rng = np.random.default_rng(seed)
    target = tf.constant(rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)), dtype)
    generated = tf.Variable(rng.uniform(-0.9, 0.9, (batch, SIZE, SIZE, 3)), dtype=dtype)
    mask = np.ones((batch, SIZE, SIZE, 1))
    if hole:
        mask[:, 4:12, 4:12] = 0.0
    logits = tf.Variable(rng.normal(size=batch), dtype=dtype)
    return target, generated, tf.constant(mask, dtype), logits


def latents(batch, dtype=tf.float64, seed=4):
    """z and E(G(z)) for the terms that `needs_encoder` (z_dim 5); row i is the same for every batch size."""
    rng = np.random.default_rng(seed)
    z, encoded = rng.uniform(-1, 1, (2, 3, 5))[:, :batch]
    return tf.Variable(z, dtype=dtype), tf.Variable(encoded, dtype=dtype)


def evaluate(name, target, generated, mask, logits, z=None, encoded=None):
    component = REGISTRY.get("loss", name)
    extra = {}
    if component.needs_encoder:
        default_z, default_encoded = latents(len(target), target.dtype)
        extra = {"z": default_z if z is None else z, "encoded": default_encoded if encoded is None else encoded}
    return component.function(
        target, generated, mask, logits if component.needs_discriminator else None, **extra, **component.defaults
    )


@pytest.mark.parametrize("name", TERMS)
def test_one_value_per_image(name):
    value = evaluate(name, *inputs())
    assert value.shape == (3,)
    assert value.dtype == tf.float32


@pytest.mark.parametrize("name", TERMS)
@pytest.mark.parametrize("fill", [-1.0, 1.0])
def test_finite_on_edge_inputs(name, fill):
    target, _, mask, logits = inputs()
    generated = tf.fill((3, SIZE, SIZE, 3), fill)
    empty_mask = tf.zeros_like(mask)
    for m in (mask, empty_mask):
        value = evaluate(name, tf.fill((3, SIZE, SIZE, 3), -fill), generated, m, logits * 100.0)
        assert np.all(np.isfinite(value.numpy())), (name, fill)


@pytest.mark.parametrize("name", TERMS)
def test_rows_are_independent(name):
    target, generated, mask, logits = inputs()
    full = evaluate(name, target, generated, mask, logits).numpy()
    first = evaluate(name, target[:1], generated[:1], mask[:1], logits[:1]).numpy()
    np.testing.assert_allclose(full[:1], first, rtol=1e-5)


STEPS = (1e-1, 1e-2, 1e-3, 1e-4)


def away_from_kinks(seed):
    """float64 inputs() with every |generated - target| at least 0.2, one sign per image, so that no absolute value
    in the terms (of pixels or of block averages) changes branch within a step of STEPS[0] along a direction in
    [-1, 1]: the terms are smooth over every difference interval below."""
    target, _, mask, logits = inputs(seed, dtype=tf.float64)
    rng = np.random.default_rng(seed + 100)
    sign = rng.choice([-1.0, 1.0], size=(len(target), 1, 1, 1))
    generated = tf.Variable(target + sign * rng.uniform(0.2, 0.6, target.shape), dtype=tf.float64)
    return target, generated, mask, logits


def assert_differences_converge(f, x, direction, exact):
    """Central differences of f along `direction` approach the tape's directional derivative `exact` as the step
    shrinks: each tenfold smaller step cuts the error at least 50x (h^2 gives 100x; terms linear or quadratic in x
    are exact at every step) until float64 round-off, and the last is within 1e-7 of it."""
    errors = [abs((f(x + h * direction) - f(x - h * direction)) / (2 * h) - exact) for h in STEPS]
    roundoff = [1e-14 * (1.0 + abs(f(x))) / h for h in STEPS]
    for big, small, floor in zip(errors, errors[1:], roundoff[1:], strict=False):
        assert small <= max(big / 50, floor), (errors, roundoff)
    assert errors[-1] <= 1e-7 * (1.0 + abs(exact)), (errors, exact)


@pytest.mark.parametrize("name", TERMS)
def test_gradient_finite_differences_converge(name):
    """The tape's gradient of every term (images, discriminator logits, z) against central differences in float64."""
    target, generated, mask, logits = away_from_kinks(seed=1)
    with tf.GradientTape(persistent=True) as tape:
        value = tf.reduce_sum(evaluate(name, target, generated, mask, logits))
    grad_images = tape.gradient(value, generated)
    grad_logits = tape.gradient(value, logits)
    rng = np.random.default_rng(2)
    base, base_logits = generated.numpy(), logits.numpy()

    def at(images, logit_values):
        return float(tf.reduce_sum(evaluate(name, target, tf.constant(images), mask, tf.constant(logit_values))))

    direction = rng.uniform(-1, 1, size=base.shape)
    exact = float(np.sum((grad_images.numpy() if grad_images is not None else 0.0) * direction))
    assert_differences_converge(lambda x: at(x, base_logits), base, direction, exact)
    if REGISTRY.get("loss", name).needs_discriminator:
        d = rng.normal(size=3)
        assert_differences_converge(lambda x: at(base, x), base_logits, d, float(np.sum(grad_logits.numpy() * d)))
    if REGISTRY.get("loss", name).needs_encoder:
        z, encoded = latents(3)
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(evaluate(name, target, generated, mask, logits, z, encoded))
        grad_z = tape.gradient(value, z).numpy()
        d = rng.normal(size=z.shape)

        def at_z(values):
            return float(tf.reduce_sum(evaluate(name, target, generated, mask, logits, tf.constant(values), encoded)))

        assert_differences_converge(at_z, z.numpy(), d, float(np.sum(grad_z * d)))


def test_contextual_ignores_the_hole():
    target, generated, mask, logits = inputs()
    changed = tf.where(mask > 0, generated, generated + 5.0)  # change only the missing pixels
    np.testing.assert_allclose(
        evaluate("contextual", target, changed, mask, logits),
        evaluate("contextual", target, generated, mask, logits),
        rtol=1e-6,
    )


def _numpy_contextual_sum(target, generated, mask):
    """Amos' contextual loss written out in numpy: sum over the known pixels and the 3 channels of |G(z) - x|."""
    known = np.broadcast_to(mask, target.shape).astype(bool)
    return np.array([np.abs(g - t)[k].sum() for t, g, k in zip(target, generated, known, strict=True)])


@pytest.mark.parametrize("size", [16, 64])
@pytest.mark.parametrize("hole", ["none", "center"])
def test_contextual_mean_is_the_sum_over_the_known_pixel_values(size, hole):
    rng = np.random.default_rng(size)
    target = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    generated = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    mask = np.ones((2, size, size, 1), np.float32)
    if hole == "center":  # facemath's center mask: the middle half of each side is missing
        mask[:, size // 4 : size - size // 4, size // 4 : size - size // 4] = 0
    known_values = {"none": size * size * 3, "center": (size * size - (size // 2) ** 2) * 3}[hole]
    assert mask[0].sum() * 3 == known_values  # 64x64 center: 3 x (4096 - 1024) = 9216; full: 12288
    function = REGISTRY.get("loss", "contextual").function
    args = (tf.constant(target), tf.constant(generated), tf.constant(mask))
    by_sum, by_mean = (function(*args, reduce=reduce).numpy() for reduce in ("sum", "mean"))
    expected_sum = _numpy_contextual_sum(target, generated, mask)
    np.testing.assert_allclose(by_sum, expected_sum, rtol=1e-5)
    np.testing.assert_allclose(by_mean, expected_sum / known_values, rtol=1e-5)
    # Independent of the count: the mean of |G(z) - x| over the known values, as numpy's own mean.
    known = np.broadcast_to(mask, target.shape).astype(bool)
    np.testing.assert_allclose(
        by_mean, [np.abs(g - t)[k].mean() for t, g, k in zip(target, generated, known, strict=True)], 1e-5
    )
    # Uniform noise in [-1, 1] on both: E|G - x| = 2/3, and the mean sees it at every size and mask.
    assert np.all(np.abs(by_mean - 2 / 3) < 0.05)
    assert REGISTRY.get("loss", "contextual").defaults == {"reduce": "sum"}  # the papers' sum stays the default
    with pytest.raises(ValueError, match="reduce 'x'"):
        function(*args, reduce="x")


def test_yeh_weights_favour_pixels_next_to_the_hole():
    from facemath_plugins.losses import yeh_weights

    mask = np.ones((1, 32, 32, 1), np.float32)
    mask[:, 12:20, 12:20] = 0
    weights = yeh_weights(tf.constant(mask)).numpy()[0, :, :, 0]
    assert weights[12:20, 12:20].max() == 0  # missing pixels carry no weight
    assert weights[11, 15] > weights[9, 15] > 0  # near the hole beats farther away
    assert weights[8, 15] == 0  # more than 3 pixels away: outside every hole pixel's 7x7 window
    assert weights[0, 0] == 0  # beyond the 7x7 window of any hole pixel
    # Without a hole the term falls back to plain L1 instead of vanishing.
    target, generated, full_mask, logits = inputs(hole=False)
    np.testing.assert_allclose(
        evaluate("weighted-contextual", target, generated, full_mask, logits),
        evaluate("contextual", target, generated, full_mask, logits),
        rtol=1e-6,
    )


def test_perceptual_forms():
    logits = tf.constant([-2.0, 0.0, 3.0])
    d = tf.sigmoid(logits).numpy()
    component = REGISTRY.get("loss", "perceptual")
    zeros = tf.zeros((3, 4, 4, 3))
    np.testing.assert_allclose(component.function(zeros, zeros, zeros[..., :1], logits), -np.log(d), rtol=1e-5)
    np.testing.assert_allclose(
        component.function(zeros, zeros, zeros[..., :1], logits, form="saturating"), np.log(1 - d), rtol=1e-5
    )
    with pytest.raises(ValueError, match="form 'x'"):
        component.function(zeros, zeros, zeros[..., :1], logits, form="x")


def test_lowres_only_sees_block_averages():
    rng = np.random.default_rng(0)
    target = rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    checker = np.indices((16, 16)).sum(axis=0) % 2 * 0.2 - 0.1  # zero mean in every 4x4 block
    generated = target + checker[None, :, :, None].astype(np.float32)
    value = evaluate("lowres", tf.constant(target), tf.constant(generated), tf.ones((1, 16, 16, 1)), None)
    assert float(value[0]) < 1e-4


@pytest.mark.parametrize("name", TERMS)
def test_every_builtin_passes_the_check_run_before_the_first_step(name):
    """The run-time contract (facemath_core.host.contracts) accepts every built-in term: a float (B,) tensor, traced
    inside tf.function, finite, with a gradient."""
    from facemath_core.host.contracts import check_loss_term

    component = REGISTRY.get("loss", name)
    check_loss_term(component, dict(component.defaults), SIZE)
