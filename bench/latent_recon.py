"""The fix bench/z_recovery.py points to, on a tiny GAN: an InfoGAN-style latent-reconstruction term.

Tiny DCGANs (32x32, z 32-d U(-1, 1), ngf = ndf = 16) are trained on the same synthetic faces with the same
seeds by `facemath train gan` (training.train), with the Radford recipe (weight 0) and with `--latent-recon
weight`: a generator loss that adds `weight * ||Q(G(z)) - z||^2` (Chen et al. 2016, "InfoGAN", with every z
dimension as a code; Q is shaped like the GAN encoder and trained with G). For each: the effective rank of dG/dz
at 16 z's (forward-mode Jacobian, as bench/z_recovery.py: directions where a z error of 0.1 moves the image by
more than one grey level RMS) and z recovery of 16 generated images by projection (Adam lr 0.01 on the pixel
loss, clip to [-1, 1], uniform random init, --project-steps steps).
This shows the direction of the effect at a size that runs in minutes; the shipped generator's retraining is in
docs/models.md.

    python bench/latent_recon.py [--steps 800] [--weights 0,1,10] [--project-steps 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402

from facemath_core.base.metrics import psnr  # noqa: E402

CRITERION = 1e-2
GREY_LEVEL = 2 / 255


def faces(folder: Path, count: int, size: int) -> Path:
    """The training faces, rendered as `facemath data synth --seed 0` renders them (all of them trained on)."""
    from facemath_core.data.synth import write_synthetic_folder

    write_synthetic_folder(folder, count, seed=0, size=size, held_out_percent=0)
    return folder


def train(cfg, data: Path, run: Path, steps: int, weight: float, seed: int = 0):
    """`facemath train gan --latent-recon WEIGHT` (the shipped training code, Q included); returns the generator
    restored from the run's checkpoint, as `facemath export` restores it, and the run's last losses."""
    from facemath_core.base import signatures as S
    from facemath_core.models.export import restore_run_models
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import train as run_training

    options = TrainOptions(
        steps=steps, batch_size=64, seed=seed, latent_recon=weight, sample_every=steps, checkpoint_every=steps
    )
    record = run_training("gan", str(data), run, cfg, options)
    metrics = record["final_metrics"]
    losses = {"d_loss": metrics["d_loss"], "g_loss": metrics["g_loss"], "latent recon MSE": metrics.get("z_recon", 0.0)}
    return restore_run_models(run)[2][S.GENERATOR], losses


def gains(generator, z: np.ndarray) -> np.ndarray:
    """(count, D) singular values of dG/dz as the image RMS change per unit z, descending."""
    import tensorflow as tf

    out = []
    for point in z:
        batch = tf.constant(np.repeat(point[None], len(point), axis=0))
        with tf.autodiff.ForwardAccumulator(batch, tf.eye(len(point))) as accumulator:
            images = generator(batch, training=False)
        jacobian = accumulator.jvp(images).numpy().reshape(len(point), -1).T
        out.append(np.linalg.svd(jacobian, compute_uv=False) / np.sqrt(jacobian.shape[0]))
    return np.stack(out)


def project(generator, images: np.ndarray, steps: int, seed: int = 1) -> np.ndarray:
    import keras
    import tensorflow as tf

    z = tf.Variable(
        np.random.default_rng(seed).uniform(-1, 1, (len(images), generator.input_shape[-1])), dtype=tf.float32
    )
    optimizer = keras.optimizers.Adam(0.01)
    target = tf.constant(images)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.reduce_mean(tf.square(generator(z, training=False) - target), axis=[1, 2, 3]))
        optimizer.apply_gradients([(tape.gradient(loss, z), z)])
        z.assign(tf.clip_by_value(z, -1.0, 1.0))

    for _ in range(steps):
        step()
    return z.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--weights", default="0,1,10", help="latent-reconstruction weights; 0 = the Radford recipe")
    parser.add_argument("--project-steps", type=int, default=500)
    parser.add_argument("--faces", type=int, default=2048)
    args = parser.parse_args()

    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.models.architectures import ArchConfig

    import_tensorflow_quietly()
    cfg = ArchConfig(image_size=32, z_dim=32, ngf=16, ndf=16)
    work = Path(tempfile.mkdtemp(prefix="latent_recon_"))
    data = faces(work / "faces", args.faces, cfg.image_size)
    z_true = np.random.default_rng(99).uniform(-1, 1, (16, cfg.z_dim)).astype(np.float32)
    rows = []
    for weight in (float(w) for w in args.weights.split(",")):
        start = time.perf_counter()
        generator, losses = train(cfg, data, work / f"gan_{weight:g}", args.steps, weight)
        seconds = time.perf_counter() - start
        g = gains(generator, z_true)
        images = generator(z_true, training=False).numpy()
        found = project(generator, images, args.project_steps)
        z_mse = np.mean((found - z_true) ** 2, axis=1)
        used = np.sqrt(CRITERION) * g > GREY_LEVEL
        rows.append(
            {
                "latent-recon weight": weight,
                "train steps": args.steps,
                "train s": seconds,
                **losses,
                "used directions (median, of 32)": float(np.median(used.sum(axis=1))),
                "smallest gain (median)": float(np.median(g[:, -1])),
                "image PSNR dB": float(np.median(psnr(generator(found, training=False).numpy(), images))),
                "median z-MSE": float(np.median(z_mse)),
                "z recovered (z-MSE < 1e-2)": float((z_mse < CRITERION).mean()),
            }
        )
        print_table("so far", rows[-1:])
    print_table("tiny GAN with and without a latent-reconstruction term", rows)
    shutil.rmtree(work)
    write_json("latent_recon", {"arch": {"image_size": 32, "z_dim": 32, "ngf": 16, "ndf": 16}, "rows": rows})


if __name__ == "__main__":
    main()
