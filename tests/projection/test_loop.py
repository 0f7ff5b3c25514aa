"""The compiled projection loop (issue 27): K steps per call on the device, best z, patience and freezing kept there.

The reference is a second implementation written here: one `tf.function` step called from Python, with the
bookkeeping on the host in numpy, as the loop ran before it was compiled (and as keras-io's projection examples
run it). The compiled loop must give the same numbers bit for bit, however the steps are cut into calls, and read
the device only when a call returns.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.seeds import row_seeds
from facemath_core.data.images import from_unit, to_unit
from facemath_core.host.manager import load_registry
from facemath_core.projection.projector import LossSpec, Projector
from facemath_core.projection.settings import projection_config
from facemath_core.serving.backends.embedded import EmbeddedBackend

# NaN for the first image from step 3 on: a row that fails mid-run, while the others go on.
NAN_LATER = """
    import tensorflow as tf
    from facemath_core import hookimpl
    from facemath_core.host.components import LossTerm

    def nan_later(target, generated, mask, disc_logits=None):
        value = tf.reduce_sum(tf.abs(generated - target), axis=[1, 2, 3])
        first = tf.equal(tf.range(tf.shape(value)[0]), 0)
        return value + tf.where(first & (value < 150.0), float("nan"), 0.0)  # the other rows' gradient stays finite

    @hookimpl
    def facemath_loss_terms():
        return [LossTerm("nan-later", "NaN for the first image once it comes close.", nan_later)]
"""


@pytest.fixture(scope="module")
def backend(tiny_export):
    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    plugin = tmp_path_factory.mktemp("nan_later") / "nan_later.py"
    plugin.write_text(textwrap.dedent(NAN_LATER))
    return load_registry([str(plugin)], builtins_only=True)


@pytest.fixture(scope="module")
def targets(backend):
    """Six 8-bit faces the tiny generator can nearly make (as read from PNG files)."""
    z = np.random.default_rng(11).uniform(-0.8, 0.8, (6, 8)).astype(np.float32)
    return to_unit(from_unit(backend.generate(z)))


KEYS = [f"face{i}.png" for i in range(6)]


def masks_for(targets, hole: bool):
    masks = np.ones(targets.shape[:3], np.float32)
    if hole:
        masks[1::2, 8:20, 10:22] = 0
    return masks


def reference_loop(backend, registry, config, targets, masks, z0, seeds):
    """The loop as it ran on the host: a traced step per call, then numpy for the best z, failures, patience."""
    import tensorflow as tf

    generate = backend.signature("generator", "serving_default")
    judge = backend.signature("discriminator", "serving_default")
    terms = [(spec, registry.get("loss", spec.name).function, spec.params) for spec in config.losses]
    needs_d = any(registry.get("loss", spec.name).needs_discriminator for spec in config.losses)
    variable = tf.Variable(z0)
    active = tf.Variable(np.ones(len(z0), np.float32))
    optimizer = registry.get("optimizer", config.optimizer).function(**config.optimizer_params)
    optimizer.build([variable])
    target, mask = tf.constant(targets), tf.constant(masks[..., None])
    del seeds  # the clip constraint draws nothing

    @tf.function
    def step():
        old = tf.identity(variable)
        with tf.GradientTape() as tape:
            images = generate(z=variable)["images"]
            logits = judge(images=images)["logits"] if needs_d else None
            values = {spec.name: fn(target, images, mask, logits, **params) for spec, fn, params in terms}
            total = tf.add_n([spec.weight * values[spec.name] for spec, _, _ in terms])
            objective = tf.reduce_sum(tf.where(active > 0, total, 0.0))
        finite = tf.math.is_finite(total) & (active > 0)
        grad = tape.gradient(objective, variable)
        grad = tf.where(tf.math.is_finite(grad), grad, 0.0) * tf.cast(finite, tf.float32)[:, None]
        optimizer.apply_gradients([(grad, variable)])
        updated = tf.clip_by_value(variable, -1.0, 1.0)
        variable.assign(tf.where(finite[:, None], updated, old))
        active.assign(tf.cast(finite, tf.float32) * active)
        return values, total, old

    n = len(z0)
    best_z, best_total = z0.copy(), np.full(n, np.inf, np.float32)
    best_terms = {spec.name: np.full(n, np.nan, np.float32) for spec in config.losses}
    last_improved, failed, steps = np.zeros(n, np.int64), {}, 0
    for s in range(config.steps):
        was_active = active.numpy() > 0
        values, total, before = step()
        total, before = total.numpy(), before.numpy()
        steps = s + 1
        for row in np.nonzero(was_active & ~np.isfinite(total))[0]:
            failed[int(row)] = s
        threshold = np.where(np.isfinite(best_total), best_total * (1 - config.tolerance), np.inf)
        ok = was_active & np.isfinite(total)
        better = ok & (total < best_total)
        best_z[better], best_total[better] = before[better], total[better]
        for name, value in values.items():
            best_terms[name][better] = value.numpy()[better]
        last_improved[ok & (total < threshold)] = s
        running = (active.numpy() > 0) & (s - last_improved < config.patience)
        active.assign(running.astype(np.float32))
        if not running.any():
            break
    return best_z, best_total, best_terms, steps, failed


CASES = {
    # Adam, the discriminator's term, a hole, rows stopping on their own patience at different steps.
    "perceptual, patience": dict(loss_plugins=["perceptual"], steps=40, patience=4, tolerance=0.02, hole=True),
    # A row whose loss becomes NaN mid-run: it stops, keeps its last finite z, and says which term.
    "a row fails": dict(loss_plugins=["nan-later", "contextual=0"], steps=30, patience=1000, tolerance=1e-4),
}


@pytest.mark.parametrize("case", CASES)
def test_the_compiled_loop_gives_the_host_loops_numbers(backend, registry, targets, case):
    options = dict(CASES[case])
    hole, tolerance = options.pop("hole", False), options.pop("tolerance")
    config = replace(projection_config(registry, batch_size=6, init="uniform", lr=0.05, **options), tolerance=tolerance)
    projector = Projector(backend, registry, config)
    masks = masks_for(targets, hole)
    z0 = projector.seeded_initial_z(targets, KEYS)
    seeds = row_seeds(0, KEYS, 1, "constraint")
    expected_z, expected_total, expected_terms, expected_steps, expected_failed = reference_loop(
        backend, registry, config, targets, masks, z0, seeds
    )
    assert 1 < expected_steps  # the case runs, and stops where it should
    for steps_per_call in (1, 3, 7, None):  # None: as many as take about half a second
        result = projector.project(targets, masks, z0, seeds=seeds, steps_per_call=steps_per_call)
        np.testing.assert_array_equal(result.z, expected_z)
        np.testing.assert_array_equal(result.total, expected_total)
        for name, value in expected_terms.items():
            np.testing.assert_array_equal(result.terms[name], value)
        assert result.steps == expected_steps and result.failed == expected_failed
    if case == "a row fails":
        assert list(result.failed) == [0] and result.failed_terms[0][0].startswith("loss 'nan-later'")
        assert np.isfinite(result.z).all()
    else:
        assert expected_steps < config.steps  # every row stopped on its patience


def test_the_loop_reads_the_device_only_when_a_call_returns(backend, registry, targets, monkeypatch):
    """Reads of device values by the host (`.numpy()`, `np.asarray`, `float()`) per projection do not grow with
    the steps: one per call of the compiled loop, and the final state."""
    from tensorflow.python.framework import ops

    config = projection_config(registry, loss_plugins=["perceptual"], batch_size=6, init="uniform", patience=10**6)
    projector = Projector(backend, registry, config)
    masks, z0 = masks_for(targets, False), projector.seeded_initial_z(targets, KEYS)
    projector.project(targets, masks, z0, steps=4)  # traced off the count
    reads = []
    for name in ("numpy", "__array__", "__float__", "__int__", "__bool__", "__index__"):
        original = getattr(ops._EagerTensorBase, name)

        def counted(self, *args, _original=original, **kwargs):
            reads.append(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ops._EagerTensorBase, name, counted)

    def reads_for(steps, per_call):
        reads.clear()
        progress = []
        result = projector.project(
            targets, masks, z0, steps=steps, steps_per_call=per_call, progress=lambda *a: progress.append(a)
        )
        assert result.steps == steps and [p[0] for p in progress] == list(range(1, steps + 1))
        return len(reads)

    few, many = reads_for(20, 10), reads_for(200, 100)
    assert few == many  # two calls each: the same reads for 10x the steps
    assert reads_for(200, 50) == many + 2  # two calls more, one read each
    assert many / 200 < 0.15  # against 8 reads per step before (issue 27)


def test_checkpoints_resume_exactly_across_a_patience_stop(backend, registry, targets):
    """A checkpoint holds the state after its step's patience check, so a run resumed from it stops its rows at
    the same steps as one that was never interrupted."""
    config = projection_config(registry, batch_size=6, init="uniform", steps=40, patience=3, lr=0.05)
    projector = Projector(backend, registry, config)
    masks, z0 = masks_for(targets, True), projector.seeded_initial_z(targets, KEYS)
    seeds = row_seeds(0, KEYS, 1, "constraint")
    straight = projector.project(targets, masks, z0, seeds=seeds)
    saved = {}
    projector.project(
        targets, masks, z0, seeds=seeds, on_checkpoint=lambda s: saved.setdefault(s["step"], s), checkpoint_every=5
    )
    assert sorted(saved) == [s for s in range(5, straight.steps, 5)]  # every 5 steps, never past the end
    for step in (5, 10):
        resumed = projector.project(targets, masks, saved[step]["best_z"], seeds=seeds, state=saved[step])
        np.testing.assert_array_equal(resumed.z, straight.z)
        np.testing.assert_array_equal(resumed.state["last_improved"], straight.state["last_improved"])
        assert resumed.steps == straight.steps


def test_stop_ends_the_batch_with_the_best_z_so_far(backend, registry, targets):
    config = projection_config(registry, batch_size=6, init="uniform", steps=500, patience=10**6)
    projector = Projector(backend, registry, config)
    masks, z0 = masks_for(targets, False), projector.seeded_initial_z(targets, KEYS)
    seen = []
    result = projector.project(
        targets, masks, z0, steps_per_call=4, on_interval=seen.append, stop=lambda: len(seen) == 2
    )
    assert result.stopped and result.steps == 8 and [i.steps for i in seen] == [4, 8]
    best_z, best_total = seen[-1].best()
    np.testing.assert_array_equal(result.z, best_z)
    np.testing.assert_array_equal(result.total, best_total)
    short = projector.project(targets, masks, z0, steps=8)
    np.testing.assert_array_equal(result.z, short.z)  # the same as a run of 8 steps


def test_the_energy_is_what_the_steps_minimise(backend, registry, targets):
    """`energy` (for a sampler, issue 31) gives each image's weighted total at z, the number the run reports at
    its best z, and its gradient is the total's: central differences converge to it."""
    import tensorflow as tf

    config = projection_config(registry, loss_plugins=["perceptual"], batch_size=6, init="uniform", steps=15)
    projector = Projector(backend, registry, config)
    masks = masks_for(targets, True)
    result = projector.project(targets, masks, projector.seeded_initial_z(targets, KEYS))
    energy = projector.energy(targets, masks)
    z = tf.constant(result.z)
    np.testing.assert_allclose(energy.total(z).numpy(), result.total, rtol=1e-5)
    values, _ = energy.values(z)
    for name in ("contextual", "perceptual"):
        np.testing.assert_allclose(values[name].numpy(), result.terms[name], rtol=1e-5)
    with tf.GradientTape() as tape:
        tape.watch(z)
        total = tf.reduce_sum(energy.total(z))
    direction = np.random.default_rng(0).normal(size=result.z.shape).astype(np.float32)
    analytic = float(tf.reduce_sum(tape.gradient(total, z) * direction))
    errors = []
    for eps in (3e-2, 1e-2, 3e-3):
        up = energy.total(tf.constant(result.z + eps * direction)).numpy().astype(np.float64).sum()
        down = energy.total(tf.constant(result.z - eps * direction)).numpy().astype(np.float64).sum()
        errors.append(abs((up - down) / (2 * eps) - analytic))
    assert errors[-1] < errors[0] and errors[-1] < 0.02 * abs(analytic)


def test_faces_start_from_their_encoder_z_in_any_batch(backend, tmp_path):
    """The default start (the model's own encoder) is per face, as random starts are: a face starts at the same z
    alone as among others, so shards and batches still merge bit for bit."""
    registry = load_registry(builtins_only=True)
    projector = Projector(backend, registry, projection_config(registry, batch_size=6, restarts=2))
    assert projector.config.init == "encoder" and projector.start.startswith("E(x) of gan_encoder version 1")
    faces = to_unit(np.stack([np.asarray(Image.fromarray(from_unit(f))) for f in backend.generate(np.zeros((3, 8)))]))
    together = projector.seeded_initial_z(faces, KEYS[:3], restarts=2)
    alone = projector.seeded_initial_z(faces[1:2], KEYS[1:2], restarts=2)
    np.testing.assert_array_equal(together[2:4], alone)
    np.testing.assert_array_equal(together[0], backend.encode_z(faces[:1])[0].clip(-1, 1))  # restart 0: E(x)
    assert LossSpec("contextual", 1.0) in projector.config.losses
