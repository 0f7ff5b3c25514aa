"""What the plugin host costs: loading the plugins, the contract checks before the first step, and a step.

- registry: building the plugin manager and calling every component hook (installed entry points; built-ins only);
- contracts: `Projector.check_contracts()` for the default run and for each preset (every loss term traced inside
  tf.function on a batch of 2, the optimizer made once, the constraint traced);
- check: every contract of every installed component, as `facemath plugins --check` runs them (inputs shaped like
  the models);
- tiny models: `facemath_core.testing.tiny_models`, every model a plugin's tests get, written from scratch;
- step: milliseconds per optimisation step at --batch-size 16, so the one-off checks can be compared with a run.
  The guard adds nothing per step: plugin functions are wrapped only while TensorFlow traces the step.

    python bench/plugins.py [--models exported_models] [--repeats 5] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402


def timed(function, repeats: int) -> float:
    """Median milliseconds of `function()` over `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.projection.projector import PRESETS, Projector
    from facemath_core.projection.settings import projection_config
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    import_tensorflow_quietly()
    rows = [
        {"what": "registry (installed)", "ms": timed(load_registry, args.repeats)},
        {"what": "registry (built-ins only)", "ms": timed(lambda: load_registry(builtins_only=True), args.repeats)},
    ]
    backend, registry = EmbeddedBackend(args.models), load_registry()
    for preset in [None, *PRESETS]:
        projector = Projector(backend, registry, projection_config(registry, preset=preset))
        terms = "+".join(spec.name for spec, _, _ in projector.terms)
        rows.append({"what": f"contracts ({preset or 'default'}: {terms})", "ms": timed(projector.check_contracts, 3)})
    from facemath_core.host.contracts import Setting, check_component
    from facemath_core.models.architectures import z_bound

    meta = backend.metadata("generator")
    setting = Setting(meta["image_size"], meta["z_dim"], z_bound(meta["z_distribution"]), backend)
    checked = [c for c in registry.components() if c.name != "file"]  # the file mask needs mask files

    def check_all():
        for component in checked:
            check_component(component, setting=setting)

    rows.append({"what": f"check every component ({len(checked)}, as plugins --check)", "ms": timed(check_all, 1)})
    import tempfile

    from facemath_core.testing import tiny_models

    with tempfile.TemporaryDirectory() as folder:
        rows.append(
            {
                "what": "tiny models for a plugin's tests (testing.tiny_models)",
                "ms": timed(lambda: tiny_models(Path(tempfile.mkdtemp(dir=folder)) / "models"), 1),
            }
        )
    config = projection_config(registry, steps=args.steps, patience=args.steps, batch_size=16)
    projector = Projector(backend, registry, config)
    size = projector.image_size
    targets = np.random.default_rng(0).uniform(-1, 1, (16, size, size, 3)).astype(np.float32)
    masks = np.ones((16, size, size), np.float32)
    z0 = projector.initial_z(targets, np.random.default_rng(0))
    projector.project(targets, masks, z0)  # trace the step once
    start = time.perf_counter()
    result = projector.project(targets, masks, z0)
    step_ms = (time.perf_counter() - start) * 1000 / result.steps
    rows.append({"what": f"one step (batch 16, {size}x{size}, default terms)", "ms": step_ms})
    print_table("plugin host costs (median ms)", rows)
    write_json("plugins", {"models": args.models, "rows": rows})


if __name__ == "__main__":
    main()
