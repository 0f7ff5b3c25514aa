"""Projection quality and speed with the shipped models, on held-out labelled faces.

- PSNR and SSIM of G(z) against the image after 100 / 300 / 1000 steps, for each preset and for encoder init;
- z recovery: generate images from known z, project them back, share recovered to z-MSE < 1e-2, with clipping
  and with stochastic clipping (Lipton & Tripathi report 100%);
- speed: facemath's projection steps against a bare `tf.function` loop doing the same forward and backward passes
  through the same SavedModels (generator, discriminator, contextual + 0.1 perceptual, Adam, clipping) and nothing
  else, at batch 1, 16 and 64, in interleaved rounds after a warm-up (median ratio and its range; target >= 0.95 at
  batch 1 and 64); traces after the warm-up (must be 0); host transfers per step of a 1000-step run
  (bench/transfers.py; 8 per step before issue 27); image-steps/s at batch 64 and its share of this machine's
  matmul peak (same run; target >= 70%).

Every projection is a `ProjectionRun` into memory, as `facemath project` runs it (per-face seeds included).

    python bench/projection.py [--models exported_models] [--faces 32] [--recover 64] [--steps 1000]
    python bench/projection.py --only speed [--rounds 7]     # the speed section alone, the rest kept
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import RESULTS, forward_macs, matmul_peak_gflops, print_table, write_json  # noqa: E402
from transfers import HostTransfers, spread, timed_run_factory  # noqa: E402

from facemath_core.base.metrics import psnr, ssim  # noqa: E402

HELD_OUT_START = 28_800  # the held-out partition of `facemath data synth --count 32000 --seed 0`
SPEED_STEPS = {1: 200, 16: 40, 64: 20}  # steps per timed round, by batch size
TRANSFERS = HostTransfers()


def held_out_faces(count: int, size: int) -> np.ndarray:
    from facemath_core.data.images import to_unit
    from facemath_core.data.synth import FaceSampler, face_rng, render_face, to_uint8

    sampler = FaceSampler()
    return to_unit(
        np.stack([to_uint8(render_face(sampler.sample(face_rng(0, HELD_OUT_START + i)), size)) for i in range(count)])
    )


def inputs_for(images: np.ndarray, prefix: str = "face"):
    from facemath_core.projection.run import JobInputs

    names = [f"{prefix}{i:05d}.png" for i in range(len(images))]
    return JobInputs(names, names, images, [])


def project(backend, registry, config, images, checkpoints=()):
    """Run a projection into memory; {steps: best z then} for the checkpoints and the end, and the wall time."""
    from facemath_core.projection.run import MemorySink, ProjectionRun

    class Snapshots(MemorySink):
        checkpoint_every = 100

        def __init__(self):
            super().__init__()
            self.z: dict[int, np.ndarray] = {}

        def checkpoint(self, batch, state):
            if state["step"] in checkpoints:
                self.z[int(state["step"])] = state["best_z"].copy()

    sink = Snapshots()
    start = time.perf_counter()
    result = ProjectionRun(backend, registry, config).run(inputs_for(images), sink)
    seconds = time.perf_counter() - start
    sink.z[config.steps] = result.latents.z
    return sink.z, seconds


def bare_loop(backend, images: np.ndarray, z0: np.ndarray, steps: int):
    """The same forward and backward passes through the same SavedModels with nothing of facemath's (keras-io's
    style: a traced step called from Python): G(z), D(G(z)), contextual + 0.1 perceptual, Adam 0.01, clipping.
    Returns a function that runs `steps` steps from z0 and the seconds they took, and the traced step."""
    import keras
    import tensorflow as tf

    from facemath_core.base import signatures as S

    generate = backend.signature(S.GENERATOR, S.DEFAULT)
    judge = backend.signature(S.DISCRIMINATOR, S.DEFAULT)
    z = tf.Variable(z0)
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build([z])
    fresh = [v.numpy() for v in optimizer.variables]
    target = tf.constant(images)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            generated = generate(z=z)[S.IMAGES]
            logits = judge(images=generated)[S.LOGITS]
            contextual = tf.reduce_sum(tf.abs(generated - target), axis=[1, 2, 3])
            total = contextual + 0.1 * tf.nn.softplus(-logits)  # -log D(G(z))
            summed = tf.reduce_sum(total)
        optimizer.apply_gradients([(tape.gradient(summed, z), z)])
        z.assign(tf.clip_by_value(z, -1.0, 1.0))

    def timed() -> float:
        start = time.perf_counter()
        z.assign(z0)
        for variable, value in zip(optimizer.variables, fresh, strict=True):
            variable.assign(value)
        for _ in range(steps):
            step()
        z.numpy()
        return time.perf_counter() - start

    return timed, step


def speed(backend, registry, size: int, rounds: int) -> dict:
    """facemath's steps against the bare loop, interleaved; host transfers; share of the matmul peak."""
    from facemath_core.models.architectures import ArchConfig, build_discriminator, build_generator
    from facemath_core.projection.run import ProjectionRun
    from facemath_core.projection.settings import projection_config

    load = [os.getloadavg()[0]]  # the machine is shared: how busy it was, at the start and the end
    rows = []
    for batch, steps in SPEED_STEPS.items():
        images = held_out_faces(batch, size)
        config = projection_config(
            registry, preset="amos2016", steps=steps, batch_size=batch, patience=10**9, init="uniform"
        )
        run = ProjectionRun(backend, registry, config)
        prepared = run.prepare(inputs_for(images))
        facemath = timed_run_factory(run, prepared)
        z0 = run.projector.seeded_initial_z(images, prepared.inputs.keys, seed=config.seed)
        bare, bare_step = bare_loop(backend, images, z0, steps)
        facemath(), bare()  # traced: off the clock
        traces = (run.projector.tracing_count(), bare_step.experimental_get_tracing_count())
        ratios, ours, theirs = [], [], []
        for r in range(rounds):
            if r % 2 == 0:
                seconds, bare_seconds = facemath()["seconds"], bare()
            else:
                bare_seconds, seconds = bare(), facemath()["seconds"]
            ratios.append(bare_seconds / seconds)  # facemath's speed / the bare loop's
            ours.append(batch * steps / seconds)
            theirs.append(batch * steps / bare_seconds)
        rows.append(
            {
                "batch": batch,
                "steps": steps,
                "facemath image-steps/s": spread(ours),
                "bare loop image-steps/s": spread(theirs),
                "facemath / bare": spread(ratios),
                "retraced after warm-up": {
                    "facemath": run.projector.tracing_count() - traces[0],
                    "bare": bare_step.experimental_get_tracing_count() - traces[1],
                },
            }
        )
        print_table("speed so far", [speed_row(rows[-1])])
    # Host transfers of a whole default run (1000 steps, batch 1: the counts do not depend on the batch).
    images = held_out_faces(1, size)
    config = projection_config(registry, preset="amos2016", steps=1000, batch_size=1, patience=10**9, init="uniform")
    run = ProjectionRun(backend, registry, config)
    timed = timed_run_factory(run, run.prepare(inputs_for(images)), transfers=TRANSFERS)
    timed()
    transfers = {"steps": 1000, "reads": TRANSFERS.reads, "writes": TRANSFERS.writes}
    transfers |= {"reads/step": TRANSFERS.reads / 1000, "writes/step": TRANSFERS.writes / 1000}
    peak = matmul_peak_gflops()
    arch = ArchConfig.from_dict(backend.metadata("generator")["arch"])
    macs = 2 * (forward_macs(build_generator(arch)) + forward_macs(build_discriminator(arch)))
    rate = rows[-1]["facemath image-steps/s"]["median"]
    peak_row = {
        "backend": "embedded",
        "batch": rows[-1]["batch"],
        "image-steps/s": rate,
        "GFLOP/image-step": 2 * macs / 1e9,
        "GFLOP/s": 2 * macs * rate / 1e9,
        "share of matmul peak": 2 * macs * rate / 1e9 / peak,
    }
    load.append(os.getloadavg()[0])
    return {
        "rounds": rounds,
        "rows": rows,
        "host_transfers": transfers,
        "peak": [peak_row],
        "matmul_peak_gflops": peak,
        "load_average": load,
    }


def speed_row(row: dict) -> dict:
    def cell(s):
        return f"{s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})"

    return {
        "batch": row["batch"],
        "facemath image-steps/s": cell(row["facemath image-steps/s"]),
        "bare loop image-steps/s": cell(row["bare loop image-steps/s"]),
        "facemath / bare": cell(row["facemath / bare"]),
        "retraced": sum(row["retraced after warm-up"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--faces", type=int, default=32)
    parser.add_argument("--recover", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved speed rounds after the warm-up (>= 5)")
    parser.add_argument("--only", choices=["speed"], default=None, help="measure one section, keep the others")
    args = parser.parse_args()

    from facemath_core.base import signatures as S
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.models.architectures import ArchConfig, sample_z
    from facemath_core.projection.projector import PRESETS
    from facemath_core.projection.settings import projection_config
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    import_tensorflow_quietly()
    backend, registry = EmbeddedBackend(args.models), load_registry()
    meta = backend.metadata(S.GENERATOR)
    timing = speed(backend, registry, meta["image_size"], max(args.rounds, 5))
    timing["written"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print_table("facemath's projection steps against a bare tf.function loop", [speed_row(r) for r in timing["rows"]])
    print_table("host transfers of a 1000-step run", [timing["host_transfers"]])
    if args.only == "speed":
        previous = json.loads((RESULTS / "projection.json").read_text())
        previous["speed"] = timing
        write_json("projection", {k: v for k, v in previous.items() if k != "machine"})  # the rest as last measured
        return

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
        snapshots, seconds = project(backend, registry, cfg, targets, checkpoints)
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
        cfg = projection_config(
            registry, steps=args.steps, constraint=constraint, batch_size=64, patience=10**9, init="uniform", seed=1
        )
        snapshots, _ = project(backend, registry, cfg, images)
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
    write_json(
        "projection",
        {
            "faces": args.faces,
            "steps": args.steps,
            "models": {name: backend.version(name) for name in (S.GENERATOR, S.GAN_ENCODER) if backend.has(name)},
            "quality": quality_rows,
            "recovery": recovery_rows,
            "speed": timing,
        },
    )


if __name__ == "__main__":
    main()
