"""The shipped models: mode collapse check (oracle attribute frequencies on GAN samples vs the training data) and
training throughput (images/s and share of this machine's matmul peak, measured in the same run; target >= 60%).

    python bench/models.py [--models exported_models] [--samples 1000] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import forward_macs, matmul_peak_gflops, print_table, write_json  # noqa: E402


def attribute_frequencies(backend, samples: int, seed: int) -> tuple[list[dict], dict]:
    from facemath_core.base import signatures as S
    from facemath_core.data.images import to_unit
    from facemath_core.data.synth import FaceSampler, face_rng, render_face, to_uint8
    from facemath_core.models.architectures import ArchConfig, sample_z

    names = backend.metadata(S.ORACLE)["attribute_names"]
    gen_meta = backend.metadata(S.GENERATOR)
    cfg = ArchConfig.from_dict(gen_meta["arch"])
    size = gen_meta["image_size"]
    # The training data: the same renderer and seed as the shipped models' data set (facemath data synth --seed 0).
    sampler = FaceSampler()
    specs = [sampler.sample(face_rng(0, i)) for i in range(samples)]
    data = to_unit(np.stack([to_uint8(render_face(s, size)) for s in specs]))
    labels = np.array([[s.attributes[n] for n in names] for s in specs])
    gan = backend.generate(sample_z(cfg, samples, seed))
    columns = {
        "labels": labels.mean(0),
        "oracle on data": (backend.judge(data) > 0).mean(0),
        "oracle on GAN": (backend.judge(gan) > 0).mean(0),
    }
    if backend.has(S.VAE_DECODER):
        vae_cfg = ArchConfig.from_dict(backend.metadata(S.VAE_DECODER)["arch"])
        z = np.random.default_rng(seed).standard_normal((samples, vae_cfg.z_dim)).astype(np.float32)
        columns["oracle on VAE prior"] = (backend.judge(backend.generate(z, S.VAE_DECODER)) > 0).mean(0)
    rows = [{"attribute": n, **{k: float(v[i]) for k, v in columns.items()}} for i, n in enumerate(names)]
    gap = float(np.abs(columns["oracle on GAN"] - columns["labels"]).max())
    # Diversity: distinct attribute combinations among the samples (a collapsed GAN repeats a few).
    combos = {"data": len({tuple(r) for r in labels}), "GAN": len({tuple(r) for r in (backend.judge(gan) > 0)})}
    return rows, {"max_frequency_gap": gap, "distinct_attribute_combinations": combos}


def throughput(steps: int) -> tuple[list[dict], float]:
    import keras
    import tensorflow as tf

    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import build_model

    peak = matmul_peak_gflops()
    rows = []
    images = np.random.default_rng(0).integers(0, 255, (64 * 4, 64, 64, 3), np.uint8)
    labels = np.random.default_rng(1).integers(0, 2, (64 * 4, 11)).astype(np.float32)
    for kind, width in (("gan", 32), ("vae", 32), ("oracle", 32)):
        names = tuple(f"a{i}" for i in range(11)) if kind == "oracle" else ()
        cfg = ArchConfig(image_size=64, ngf=width, ndf=width, attribute_names=names)
        options = TrainOptions(batch_size=64)
        model = build_model(kind, cfg, options)
        model.prepare(images, labels, options)
        dataset = model.dataset(images, labels, options)
        model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        rate = steps * 64 / (time.perf_counter() - start)
        if kind == "gan":
            g, d = forward_macs(model.generator), forward_macs(model.discriminator)
            # D update: G fwd + D fwd/bwd on real and fake; G update: G fwd/bwd + D fwd + D input-grad.
            macs = 4 * g + 8 * d
        elif kind == "vae":
            macs = 3 * (forward_macs(model.encoder) + forward_macs(model.decoder))
        else:
            macs = 3 * forward_macs(model.classifier)
        gflops = 2 * macs * rate / 1e9
        rows.append(
            {
                "model": f"{kind} (64x64, width {width})",
                "images/s": rate,
                "GFLOP/image": 2 * macs / 1e9,
                "GFLOP/s": gflops,
                "share of matmul peak": gflops / peak,
            }
        )
        del model
        keras.backend.clear_session()
        tf.keras.backend.clear_session() if hasattr(tf, "keras") else None
    return rows, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    import_tensorflow_quietly()
    backend = EmbeddedBackend(args.models)
    frequency_rows, summary = attribute_frequencies(backend, args.samples, args.seed)
    print_table(f"attribute frequencies, {args.samples} samples (oracle judging)", frequency_rows)
    print(
        f"largest |GAN - data| frequency gap: {summary['max_frequency_gap']:.3f}; distinct attribute "
        f"combinations: data {summary['distinct_attribute_combinations']['data']}, "
        f"GAN {summary['distinct_attribute_combinations']['GAN']}"
    )
    throughput_rows, peak = throughput(args.steps)
    print_table(f"training throughput (batch 64); matmul peak measured now: {peak:.1f} GFLOP/s", throughput_rows)
    write_json(
        "models",
        {
            "samples": args.samples,
            "frequencies": frequency_rows,
            **summary,
            "matmul_peak_gflops": peak,
            "throughput": throughput_rows,
        },
    )


if __name__ == "__main__":
    main()
