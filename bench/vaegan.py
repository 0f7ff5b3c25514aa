"""The shipped VAE-GAN against the VAE and the GAN on held-out faces: reconstruction fidelity (PSNR of Dec(Enc(x))
from the encoder's mean, with its 95% interval), sharpness (variance of the Laplacian over the original's) and
realism (the Frechet distance in the attribute oracle's penultimate-layer features, FID's recipe with the oracle as
the feature network) of reconstructions and of prior samples; optionally the figures of docs/models.md.

    python bench/vaegan.py --data data/faces [--models exported_models] [--faces 3200]
        [--run runs/vaegan64 --figures docs/images]

The held-out faces are split in two halves of equal size: the first is the reference population, every set scored
against it has as many faces as the second (the Frechet estimate's bias depends on N), and the second half itself
scores the floor, real against real.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402

SAMPLE_SEED = 2026  # the prior samples of docs/models.md's grids (the GAN's use the same seed)


def _in_batches(fn, x, size=256):
    return np.concatenate([fn(x[i : i + size]) for i in range(0, len(x), size)])


def measure(backend, faces: np.ndarray) -> tuple[list[dict], dict]:
    from facemath_core.base import signatures as S
    from facemath_core.base.metrics import frechet_distance, laplacian_variance, mean_ci, psnr
    from facemath_core.latent.quality import oracle_features
    from facemath_core.models.architectures import prior_config, sample_z

    half = len(faces) // 2
    reference, held = faces[:half], faces[half : 2 * half]
    real_features = oracle_features(backend, reference)
    sharp_real = laplacian_variance(held)
    rows = [
        {
            "images": "real held-out faces (second half)",
            "PSNR dB": None,
            "PSNR 95%": None,
            "sharpness": 1.0,
            "Frechet": frechet_distance(real_features, oracle_features(backend, held)),
        }
    ]
    for family, decoder in (("vaegan", S.VAEGAN_DECODER), ("vae", S.VAE_DECODER)):
        recon = _in_batches(lambda x, d=decoder: backend.generate(backend.encode_z(x, d), d), held)
        value, half_width = mean_ci(psnr(held, recon))
        rows.append(
            {
                "images": f"{family} reconstructions Dec(Enc(x))",
                "PSNR dB": value,
                "PSNR 95%": half_width,
                "sharpness": float(np.median(laplacian_variance(recon) / sharp_real)),
                "Frechet": frechet_distance(real_features, oracle_features(backend, recon)),
            }
        )
    for family, decoder in (("vaegan", S.VAEGAN_DECODER), ("vae", S.VAE_DECODER), ("gan", S.GENERATOR)):
        cfg = prior_config(backend.metadata(decoder))
        samples = _in_batches(lambda z, d=decoder: backend.generate(z, d), sample_z(cfg, half, SAMPLE_SEED))
        rows.append(
            {
                "images": f"{family} prior samples ({decoder} v{backend.version(decoder)})",
                "PSNR dB": None,
                "PSNR 95%": None,
                "sharpness": float(np.median(laplacian_variance(samples)) / np.median(sharp_real)),
                "Frechet": frechet_distance(real_features, oracle_features(backend, samples)),
            }
        )
    versions = {m: backend.version(m) for m in (S.VAEGAN_ENCODER, S.VAEGAN_DECODER, S.VAE_DECODER, S.GENERATOR)}
    return rows, {"faces_per_set": half, "versions": versions, "oracle_version": backend.version(S.ORACLE)}


def curves_figure(run: Path, out: Path) -> None:
    """The run's TensorBoard scalars (every 50 steps) as one figure of four panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, list[tuple[int, float]]] = {}
    for events in sorted((run / "logs").glob("events.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            if tag != "samples":
                series.setdefault(tag, []).extend(
                    (e.step, float(tf.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)
                )
    panels = [
        ("encoder: L_llike^Dis_l and KL", [("llike", "L_llike^Dis_l"), ("kl", "KL")], True),
        ("decoder's GAN term and D's loss", [("g_loss", "decoder GAN term"), ("d_loss", "discriminator")], False),
        ("D's verdicts", [("D(x)", "D(x)"), ("D(x~)", "D(reconstruction)"), ("D(x_p)", "D(prior sample)")], False),
        ("pixel MSE of reconstructions (not trained on)", [("pixel", "MSE, [-1, 1] scale")], True),
    ]
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for axis, (title, tags, log) in zip(axes, panels, strict=True):
        for tag, label in tags:
            points = sorted(dict(series.get(tag, [])).items())
            if points:
                axis.plot(*zip(*points, strict=True), label=label)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("step")
        if log:
            axis.set_yscale("log")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    print(f"wrote {out}")


def grids(backend, faces: np.ndarray, folder: Path) -> None:
    """64 prior samples (seed 2026) and 32 held-out faces over their reconstructions, as docs/models.md shows them."""
    from facemath_core.base import signatures as S
    from facemath_core.data.images import from_unit, image_grid, save_png
    from facemath_core.models.architectures import ArchConfig, sample_z

    cfg = ArchConfig.from_dict(backend.metadata(S.VAEGAN_DECODER)["arch"])
    samples = backend.generate(sample_z(cfg, 64, SAMPLE_SEED), S.VAEGAN_DECODER)
    save_png(folder / "vaegan_samples.png", image_grid(from_unit(samples), columns=8))
    originals = faces[:32]
    recon = backend.generate(backend.encode_z(originals, S.VAEGAN_DECODER), S.VAEGAN_DECODER)
    rows = [block for i in range(0, 32, 8) for block in (originals[i : i + 8], recon[i : i + 8])]
    save_png(folder / "vaegan_reconstructions.png", image_grid(from_unit(np.concatenate(rows)), columns=8))
    print(f"wrote {folder / 'vaegan_samples.png'} and {folder / 'vaegan_reconstructions.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--data", required=True, help="the training folder: its held-out split is measured")
    parser.add_argument("--faces", type=int, default=3200, help="held-out faces used (split in two halves)")
    parser.add_argument("--run", type=Path, help="the VAE-GAN's run folder, for the training-curves figure")
    parser.add_argument("--figures", type=Path, help="write the figures into this folder (docs/images)")
    args = parser.parse_args()

    from facemath_core.data.images import to_unit
    from facemath_core.data.pipeline import load_split
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    faces = to_unit(load_split(args.data, 64, "held-out").images[: args.faces])
    with EmbeddedBackend(args.models) as backend:
        rows, extra = measure(backend, faces)
        print_table(f"VAE-GAN, VAE and GAN on {len(faces)} held-out faces (two halves of {len(faces) // 2})", rows)
        write_json("vaegan", {"data": Path(args.data).name, "held_out_faces": len(faces), **extra, "rows": rows})
        if args.figures:
            grids(backend, faces, args.figures)
    if args.figures and args.run:
        curves_figure(args.run, args.figures / "vaegan_training.png")


if __name__ == "__main__":
    main()
