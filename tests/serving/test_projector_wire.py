"""Fewer bytes per projection step over TF Serving (issue 27): the projector takes the targets as 8-bit pixels and a
0/1 mask as uint8, or no mask at all, converted on the server; its float signature stays for older clients, and
the client uses it with older exports. The reference is the float signature itself: the same numbers, bit for bit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facemath_core.base import signatures as S
from facemath_core.data.images import from_unit, to_unit
from facemath_core.host.manager import load_registry
from facemath_core.projection.projector import Projector
from facemath_core.projection.settings import projection_config
from facemath_core.serving.backends.embedded import EmbeddedBackend
from facemath_core.serving.backends.tfserving import TFServingBackend, exact_pixels
from facemath_core.serving.model_config import entries_for_folder
from facemath_core.serving.session_model import SessionModel
from facemath_core.serving.standin import build_server

ROOT = Path(__file__).parents[2]
REGISTRY = load_registry(builtins_only=True)


def test_exact_pixels_are_found_only_where_they_are_exact():
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    np.testing.assert_array_equal(exact_pixels(to_unit(every)), every)
    assert exact_pixels(to_unit(every) + np.float32(1e-3)) is None  # e.g. images a generator made
    assert exact_pixels(np.zeros((1, 2, 2, 3), np.float32)) is None  # 0.0 is between two pixel values


def test_the_pixel_signatures_give_the_float_signatures_numbers(tiny_export):
    """Run as TF Serving runs them (the TF1 loader and Session.run): the same outputs bit for bit."""
    model = SessionModel(tiny_export / S.PROJECTOR / "1")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    known = np.ones((3, 32, 32, 1), np.uint8)
    known[:, 4:20, 6:22] = 0
    z = rng.uniform(-1, 1, (3, 8)).astype(np.float32)
    weights = np.tile(np.array([[1, 0.5, 0.2, 0.1, 0.05, 0.3]], np.float32), (3, 1))
    common = {S.Z: z, S.LOSS_WEIGHTS: weights}
    for mask in (known, np.ones_like(known)):
        floats = model.run(S.STEP, {**common, S.TARGET: to_unit(pixels), S.MASK: mask.astype(np.float32)})
        if mask.all():
            ours = model.run(S.STEP_PIXELS_UNMASKED, {**common, S.PIXELS: pixels})
        else:
            ours = model.run(S.STEP_PIXELS, {**common, S.PIXELS: pixels, S.KNOWN: mask})
        for alias in (S.LOSSES, S.TOTAL, S.Z_GRAD, S.IMAGES):
            np.testing.assert_array_equal(ours[alias], floats[alias], err_msg=alias)
    model.close()


@pytest.fixture(scope="module")
def served(tiny_export):
    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    server.stop(0)


def project(backend, targets, masks, floats=False, steps=8):
    """Project through the backend's projector; `floats`: as a client of an export without the pixel
    signatures would (the float `step`). The z, the totals and the bytes per step."""
    config = projection_config(REGISTRY, loss_plugins=["perceptual"], steps=steps, batch_size=len(targets))
    projector = Projector(backend, REGISTRY, replace(config, init="uniform"))
    assert projector.fused is not None
    if floats:
        backend.serves = lambda model, signature: signature not in (S.STEP_PIXELS, S.STEP_PIXELS_UNMASKED)
    before = backend.bytes_sent + backend.bytes_received
    z0 = projector.initial_z(targets, np.random.default_rng(0))
    result = projector.project(targets, masks, z0, steps_per_call=4)
    return result.z, result.total, (backend.bytes_sent + backend.bytes_received - before) / steps


@pytest.mark.parametrize("hole", [False, True], ids=["projection", "completion"])
def test_a_step_sends_pixels_and_gives_the_same_z(served, tiny_export, hole):
    local = EmbeddedBackend(tiny_export)
    targets = to_unit(from_unit(local.generate(np.random.default_rng(3).uniform(-1, 1, (6, 8)).astype(np.float32))))
    masks = np.ones((6, 32, 32), np.float32)
    if hole:
        masks[:, 8:20, 10:22] = 0
    z, total, moved = project(TFServingBackend(served), targets, masks)
    z_floats, total_floats, moved_floats = project(TFServingBackend(served), targets, masks, floats=True)
    np.testing.assert_array_equal(z, z_floats)
    np.testing.assert_array_equal(total, total_floats)
    # 1 byte instead of 4 per target value; the mask 1 byte instead of 4, or none.
    assert moved < (0.27 if hole else 0.21) * moved_floats, (moved, moved_floats)


@pytest.mark.slow
def test_the_shipped_projectors_old_and_new_give_the_same_z():
    """The shipped models (real weights): projector version 2 (float signature only: what older clients use) and
    version 3 (pixel signatures too), both built from generator 2 and discriminator 2, served side by side as
    serving/models.config serves them. Asked for version 2 the client takes the float path; by default the newest,
    and pixels: the same z at a quarter of the bytes or less (batch 16: 1.0 MiB a step before)."""
    models = ROOT / "exported_models"
    entries = [replace(e, policy="all") for e in entries_for_folder(models)]
    server, port, _ = build_server(entries, "127.0.0.1", 0)
    try:
        old = TFServingBackend(f"127.0.0.1:{port}", version=2)
        new = TFServingBackend(f"127.0.0.1:{port}")
        assert new.version(S.PROJECTOR) == 3 and new.version(S.GENERATOR) == 2
        assert not old.serves(S.PROJECTOR, S.STEP_PIXELS) and new.serves(S.PROJECTOR, S.STEP_PIXELS_UNMASKED)
        local = EmbeddedBackend(models)
        z = np.random.default_rng(1).uniform(-1, 1, (16, 32)).astype(np.float32)
        targets = to_unit(from_unit(local.generate(z)))
        masks = np.ones((16, 64, 64), np.float32)
        z_old, total_old, moved_old = project(old, targets, masks, steps=4)
        z_new, total_new, moved_new = project(new, targets, masks, steps=4)
    finally:
        server.stop(0)
    np.testing.assert_array_equal(z_new, z_old)
    np.testing.assert_array_equal(total_new, total_old)
    assert moved_old > 2**20 and moved_new < moved_old / 4, (moved_old, moved_new)
