"""Projection quality and speed with the shipped models, on held-out labelled faces.

- PSNR and SSIM of G(z) against the image after 100 / 300 / 1000 steps, for each preset and for encoder init;
- z recovery: generate images from known z, project them back, share recovered to z-MSE < 1e-2, with clipping
  and with stochastic clipping (Lipton & Tripathi report 100%);
- image-steps/s of the embedded backend and the share of this machine's matmul peak (same run; target >= 70%).

    python bench/projection.py [--models exported_models] [--faces 32] [--recover 64] [--steps 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import forward_macs, matmul_peak_gflops, print_table, write_json  # noqa: E402

from facemath_core.base.metrics import psnr, ssim  # noqa: E402

HELD_OUT_START = 28_800  # the held-out partition of `facemath data synth --count 32000 --seed 0`


def held_out_faces(count: int, size: int) -> np.ndarray:
    from facemath_core.data.images import to_unit
    from facemath_core.data.synth import FaceSampler, face_rng, render_face, to_uint8

    sampler = FaceSampler()
    return to_unit(
        np.stack([to_uint8(render_face(sampler.sample(face_rng(0, HELD_OUT_START + i)), size)) for i in range(count)])
    )


def run(projector, targets, z0, checkpoints=(100, 300)):
    """Project; return {steps: best z at that step} for the checkpoints and the end, and the wall time."""
    snapshots = {}

    def keep(state):
        if state["step"] in checkpoints:
            snapshots[int(state["step"])] = state["best_z"].copy()

    masks = np.ones(targets.shape[:3], np.float32)
    start = time.perf_counter()
    result = projector.project(targets, masks, z0, on_checkpoint=keep, checkpoint_every=100)
    seconds = time.perf_counter() - start
    snapshots[projector.config.steps] = result.z
    return snapshots, seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--faces", type=int, default=32)
    parser.add_argument("--recover", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()

    from facemath_core.base import signatures as S
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.models.architectures import ArchConfig, sample_z
    from facemath_core.projection.projector import PRESETS, Projector
    from facemath_core.projection.settings import projection_config
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    import_tensorflow_quietly()
    backend, registry = EmbeddedBackend(args.models), load_registry()
    meta = backend.metadata(S.GENERATOR)
    targets = held_out_faces(args.faces, meta["image_size"])
    # The same options-to-config path as `facemath project [--preset NAME] --steps N`.
    variants = {
        name: projection_config(registry, preset=name, steps=args.steps, batch_size=64, patience=10**9)
        for name in PRESETS
    }
    if backend.has(S.GAN_ENCODER):  # --init encoder: the gan_encoder (iGAN's hybrid); curves: bench/hybrid.py
        variants["amos2016 + encoder init"] = replace(variants["amos2016"], init="encoder")
    if backend.has(S.VAE_ENCODER):
        variants["VAE encoder alone"] = None
    checkpoints = tuple(s for s in (100, 300) if s < args.steps)
    quality_rows = []
    for name, cfg in variants.items():
        if cfg is None:
            z_mean, _ = backend.encode(targets)
            images = backend.generate(z_mean, S.VAE_DECODER)
            quality_rows.append(
                {
                    "method": name,
                    "steps": 0,
                    "PSNR dB": float(psnr(images, targets).mean()),
                    "PSNR std": float(psnr(images, targets).std()),
                    "SSIM": float(ssim(images, targets).mean()),
                    "s/image": None,
                }
            )
            continue
        projector = Projector(backend, registry, cfg)
        z0 = projector.initial_z(targets, np.random.default_rng(0))
        snapshots, seconds, _ = run(projector, targets, z0, checkpoints)
        for steps in sorted(snapshots):
            images = backend.generate(snapshots[steps])
            p = psnr(images, targets)
            quality_rows.append(
                {
                    "method": name,
                    "steps": steps,
                    "PSNR dB": float(p.mean()),
                    "PSNR std": float(p.std()),
                    "SSIM": float(ssim(images, targets).mean()),
                    "s/image": seconds / len(targets) if steps == args.steps else None,
                }
            )
        print_table("projection quality so far", quality_rows[-len(snapshots) :])
    print_table(f"projection of {args.faces} held-out faces", quality_rows)

    # z recovery of generated images.
    cfg_arch = ArchConfig.from_dict(meta["arch"])
    z_true = sample_z(cfg_arch, args.recover, seed=99)
    images = backend.generate(z_true)
    recovery_rows = []
    for constraint in ("clip", "stochastic"):
        cfg = projection_config(registry, steps=args.steps, constraint=constraint, batch_size=64, patience=10**9)
        projector = Projector(backend, registry, cfg)
        z0 = projector.initial_z(images, np.random.default_rng(1))
        snapshots, seconds, _ = run(projector, images, z0, ())
        z_mse = np.mean((snapshots[args.steps] - z_true) ** 2, axis=1)
        recovery_rows.append(
            {
                "constraint": constraint,
                "images": args.recover,
                "steps": args.steps,
                "share z-MSE < 1e-2": float((z_mse < 1e-2).mean()),
                "median z-MSE": float(np.median(z_mse)),
                "image PSNR dB": float(psnr(backend.generate(snapshots[args.steps]), images).mean()),
            }
        )
    print_table("z recovery of generated images", recovery_rows)

    # Speed: one step = generator forward and backward to z, discriminator forward and backward to the image.
    peak = matmul_peak_gflops()
    cfg = projection_config(registry, preset="amos2016", steps=30, batch_size=64, patience=10**9)
    projector = Projector(backend, registry, cfg)
    batch = held_out_faces(64, meta["image_size"])
    z0 = projector.initial_z(batch, np.random.default_rng(2))
    times = {}
    # Time steps 5..30 only: the first steps trace the tf.function.
    projector.project(
        batch,
        np.ones(batch.shape[:3], np.float32),
        z0,
        progress=lambda step, mean, terms: times.__setitem__(step, time.perf_counter()),
    )
    rate = 25 * 64 / (times[30] - times[5])
    from facemath_core.models.architectures import build_discriminator, build_generator

    macs = 2 * (forward_macs(build_generator(cfg_arch)) + forward_macs(build_discriminator(cfg_arch)))
    speed = [
        {
            "backend": "embedded",
            "batch": 64,
            "image-steps/s": rate,
            "GFLOP/image-step": 2 * macs / 1e9,
            "GFLOP/s": 2 * macs * rate / 1e9,
            "share of matmul peak": 2 * macs * rate / 1e9 / peak,
        }
    ]
    print_table(f"projection speed (contextual + perceptual); matmul peak now {peak:.1f} GFLOP/s", speed)
    write_json(
        "projection",
        {
            "faces": args.faces,
            "steps": args.steps,
            "models": {name: backend.version(name) for name in (S.GENERATOR, S.GAN_ENCODER) if backend.has(name)},
            "quality": quality_rows,
            "recovery": recovery_rows,
            "speed": speed,
            "matmul_peak_gflops": peak,
        },
    )


if __name__ == "__main__":
    main()
