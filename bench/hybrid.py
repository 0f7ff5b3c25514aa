"""iGAN's hybrid with the shipped gan_encoder: time-to-quality curves on held-out faces, all measured in one run.

For each start (uniform init; encoder init = the true hybrid; encoder init + the in-domain loss) the amos2016
projection runs for --steps steps on the same faces, and the PSNR of G(best z so far) is recorded against wall
seconds (the encoder's forward pass counts in the hybrid's time). Reported:
- the encoder alone: PSNR of G(E(x));
- the hybrid's time to reach the PSNR uniform init reaches after --steps steps, as a share of uniform's time
  (issue 14's target: <= 1/5);
- the best PSNR of each (target: >= 24 dB).

    python bench/hybrid.py [--models exported_models] [--faces 16] [--steps 1000] [--every 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402
from projection import held_out_faces  # noqa: E402

from facemath_core.base.metrics import psnr  # noqa: E402


def curve(backend, projector, targets, z0, setup_seconds: float, every: int) -> list[dict]:
    """[(wall seconds, steps, mean PSNR)] every `every` steps; PSNR is computed after the run, off the clock."""
    times: dict[int, float] = {}
    snapshots: dict[int, np.ndarray] = {0: z0.copy()}

    def keep(state):
        snapshots[int(state["step"])] = state["best_z"].copy()

    masks = np.ones(targets.shape[:3], np.float32)
    start = time.perf_counter()
    result = projector.project(
        targets,
        masks,
        z0,
        progress=lambda step, mean, terms: times.__setitem__(step, time.perf_counter() - start),
        on_checkpoint=keep,
        checkpoint_every=every,
    )
    snapshots[result.steps] = result.z
    times[0] = 0.0
    return [
        {
            "seconds": setup_seconds + times[step],
            "steps": step,
            "PSNR dB": float(psnr(backend.generate(z), targets).mean()),
        }
        for step, z in sorted(snapshots.items())
    ]


def time_to_reach(points: list[dict], level: float) -> float | None:
    """Wall seconds of the first point at or above `level` dB, None if never."""
    return next((p["seconds"] for p in points if p["PSNR dB"] >= level), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--in-domain-weight", type=float, default=None, help="default: the term's default weight")
    args = parser.parse_args()

    from facemath_core.base import signatures as S
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.projection.projector import LossSpec, Projector
    from facemath_core.projection.settings import projection_config
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    import_tensorflow_quietly()
    backend, registry = EmbeddedBackend(args.models), load_registry()
    meta = backend.metadata(S.GENERATOR)
    targets = held_out_faces(args.faces, meta["image_size"])
    base = projection_config(registry, preset="amos2016", steps=args.steps, batch_size=64, patience=10**9)
    weight = args.in_domain_weight or registry.get("loss", "in-domain").default_weight
    variants = {
        "uniform init": base,
        "encoder init (hybrid)": replace(base, init="encoder"),
        "encoder init + in-domain": replace(base, init="encoder", losses=(*base.losses, LossSpec("in-domain", weight))),
    }

    backend.encode_z(targets[:1])  # load the SavedModel and trace, off the clock
    encoder_start = time.perf_counter()
    z_encoded = backend.encode_z(targets)
    encoder_seconds = time.perf_counter() - encoder_start
    encoder_psnr = psnr(backend.generate(z_encoded), targets)
    rows = [{"method": "encoder alone", "steps": 0, "seconds": encoder_seconds, "PSNR dB": float(encoder_psnr.mean())}]
    curves = {}
    for name, cfg in variants.items():
        projector = Projector(backend, registry, cfg)
        start = time.perf_counter()
        z0 = projector.initial_z(targets, np.random.default_rng(0))
        setup = time.perf_counter() - start if cfg.init == "encoder" else 0.0
        projector.project(targets[:2], np.ones((2, *targets.shape[1:3]), np.float32), z0[:2])  # trace, off the clock
        curves[name] = curve(backend, projector, targets, z0, setup, args.every)
        last = curves[name][-1]
        best = max(p["PSNR dB"] for p in curves[name])
        rows.append({"method": name, "steps": last["steps"], "seconds": last["seconds"], "PSNR dB": best})
        print_table(f"{name}: PSNR against wall seconds (every 100 steps)", curves[name][:: max(1, 100 // args.every)])

    reference = curves["uniform init"][-1]
    level, reference_seconds = reference["PSNR dB"], reference["seconds"]
    reach = []
    for name, points in curves.items():
        seconds = time_to_reach(points, level)
        reach.append(
            {
                "method": name,
                f"seconds to {level:.2f} dB": seconds,
                "share of uniform's time": None if seconds is None else seconds / reference_seconds,
            }
        )
    print_table(f"projection of {args.faces} held-out faces, {args.steps} steps of amos2016", rows)
    print_table(f"time to reach uniform init's {args.steps}-step PSNR ({level:.2f} dB)", reach)
    write_json(
        "hybrid",
        {
            "faces": args.faces,
            "steps": args.steps,
            "in_domain_weight": weight,
            "encoder": {"PSNR dB": float(encoder_psnr.mean()), "PSNR std": float(encoder_psnr.std())},
            "models": {m: backend.version(m) for m in (S.GENERATOR, S.DISCRIMINATOR, S.GAN_ENCODER)},
            "summary": rows,
            "time_to_reach": reach,
            "curves": curves,
        },
    )


if __name__ == "__main__":
    main()
