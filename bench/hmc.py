"""Sampled completions (issue 31): HMC from the Adam completion, on held-out faces with the center mask.

For each setting of the built-in `hmc` sampler (Amos 2016's beta 0.2, eps 0.001, L 100, and larger steps), from
the optimised z of the normal completion (`facemath complete --mask center`, its defaults):

- acceptance rate per face (median, range);
- effective sample size of each z dimension of each face's chain, by Geyer's initial positive sequence estimator
  (Geyer 1992, "Practical Markov chain Monte Carlo", section 3.3; the one Stan and arviz build on), on the kept
  samples; per face the minimum and the median over dimensions; ESS/s = the sum over faces of the per-face median
  ESS (or minimum) / the wall seconds of sampling the whole batch (the faces' chains run together, one batch);
- the spread of the completions over samples: mean per-pixel standard deviation (over colour and pixels) inside
  the hole and outside it (0 after blending: every known pixel is the input's), and of G(z) itself outside;
- known-pixel PSNR of each sample's G(z) against the input, beside the Adam completion's;
- hole PSNR against the original face: the Adam completion, each sample, and the mean of the samples.

The sampling is `facemath_core.projection.sampling.sample_run`, as `complete --sampler hmc` runs it.

    nice -n 10 python bench/hmc.py [--models exported_models] [--faces 32] [--samples 20] [--burn-in 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402
from projection import held_out_faces, inputs_for  # noqa: E402

from facemath_core.base.metrics import known_psnr  # noqa: E402

# (label, the sampler's parameters beside burn_in and thin)
SETTINGS = [
    ("Amos 2016: beta 0.2, eps 0.001, L 100", {"beta": 0.2, "eps": 0.001, "L": 100}),
    ("beta 0.2, eps 0.01, L 20", {"beta": 0.2, "eps": 0.01, "L": 20}),
    ("beta 0.2, eps 0.03, L 20", {"beta": 0.2, "eps": 0.03, "L": 20}),
]


def geyer_ess(chain: np.ndarray) -> float:
    """Effective sample size of one scalar chain by Geyer's initial positive sequence: the sum of the
    autocorrelations, in pairs Gamma_k = rho_2k + rho_2k+1, truncated at the first pair that is not positive;
    ESS = n / (-1 + 2 sum Gamma_k). A chain that never moved has no spread to estimate: ESS 1 (one distinct
    value). Capped at n log10(n) as arviz caps it (antithetic chains can give more than n)."""
    x = np.asarray(chain, np.float64)
    n = len(x)
    x = x - x.mean()
    variance = np.dot(x, x) / n
    if n < 4 or variance <= 1e-24 * max(1.0, float(np.max(np.abs(chain))) ** 2):
        return 1.0
    # Autocovariances at every lag through the FFT (zero-padded: no wrap-around), biased (1/n) as Geyer uses.
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n] / n
    rho = acov / acov[0]
    total = 0.0
    for k in range(0, n - 1, 2):
        pair = rho[k] + rho[k + 1]
        if pair <= 0:
            break
        total += pair
    tau = -1.0 + 2.0 * total
    return float(min(n / max(tau, 1e-12), n * np.log10(n)))


def chain_ess(z: np.ndarray) -> np.ndarray:
    """ESS per face and dimension of z (faces, samples, D): (faces, D)."""
    return np.array([[geyer_ess(z[i, :, j]) for j in range(z.shape[2])] for i in range(z.shape[0])])


def spread_by_region(images: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """Mean per-pixel standard deviation over samples (images (faces, samples, S, S, 3) in [-1, 1], as the
    samples sheet shows it: averaged over colour) inside the hole (mask 0) and over the known pixels."""
    spread = images.std(axis=1).mean(axis=-1)  # (faces, S, S)
    hole = masks < 0.5
    return float(spread[hole].mean()), float(spread[~hole].mean())


def summary(values: np.ndarray) -> dict:
    values = np.asarray(values, np.float64)
    return {"median": float(np.median(values)), "min": float(values.min()), "max": float(values.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--faces", type=int, default=32)
    parser.add_argument("--samples", type=int, default=20, help="kept samples per face and setting")
    parser.add_argument("--burn-in", type=int, default=5, help="proposals dropped (the chain starts at the mode)")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (default: complete's)")
    args = parser.parse_args()

    from facemath_core.base import signatures as S
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.projection.run import MemorySink, ProjectionRun
    from facemath_core.projection.sampling import SamplingConfig, numpy_energy, sample_run
    from facemath_core.projection.settings import projection_config

    import_tensorflow_quietly()
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    load = [os.getloadavg()[0]]  # the machine is shared: how busy it was, at the start and the end
    backend, registry = EmbeddedBackend(args.models), load_registry()
    meta = backend.metadata(S.GENERATOR)
    targets = held_out_faces(args.faces, meta["image_size"])

    # The Adam completion, as `facemath complete --mask center` runs it (its defaults, one batch).
    config = projection_config(registry, mask="center", steps=args.steps, batch_size=max(args.faces, 1))
    run = ProjectionRun(backend, registry, config)
    sink = MemorySink()
    start = time.perf_counter()
    run.run(inputs_for(targets), sink)
    adam_seconds = time.perf_counter() - start
    result = sink.result
    masks = result.masks
    hole = 1.0 - masks
    adam_known = known_psnr(result.generated, targets, masks)
    adam_hole = known_psnr(result.completions, targets, hole)
    print(f"Adam completion of {args.faces} faces: {adam_seconds:.1f} s, known-pixel PSNR {adam_known.mean():.2f} dB")

    # One energy gradient of the whole batch, for the cost of a proposal (L of them).
    energy = numpy_energy(run.projector.energy(result.inputs.images, masks))
    energy(result.latents.z)
    start = time.perf_counter()
    for _ in range(5):
        energy(result.latents.z)
    gradient_seconds = (time.perf_counter() - start) / 5
    print(f"one energy gradient of the batch: {gradient_seconds * 1e3:.0f} ms")

    component = registry.get("sampler", "hmc")
    rows, details = [], []
    for label, params in SETTINGS:
        sampling = SamplingConfig("hmc", args.samples, {**params, "burn_in": args.burn_in, "thin": 1})
        start = time.perf_counter()
        samples = sample_run(run, component, sampling, result)
        seconds = time.perf_counter() - start
        ess = chain_ess(samples.z)  # (faces, D)
        ess_median, ess_min = np.median(ess, axis=1), ess.min(axis=1)
        hole_spread, known_spread = spread_by_region(samples.completions, masks)
        _, generated_known_spread = spread_by_region(samples.generated, masks)
        flat = samples.generated.reshape(-1, *samples.generated.shape[2:])
        repeat = np.repeat(np.arange(args.faces), args.samples)
        sample_known = known_psnr(flat, targets[repeat], masks[repeat]).reshape(args.faces, args.samples)
        flat_completions = samples.completions.reshape(flat.shape)
        sample_hole = known_psnr(flat_completions, targets[repeat], hole[repeat]).reshape(args.faces, args.samples)
        mean_hole = known_psnr(samples.completions.mean(axis=1), targets, hole)
        moved = np.sqrt(np.mean((samples.z - result.latents.z[:, None, :]) ** 2, axis=2))  # RMS per sample
        detail = {
            "setting": label,
            "params": sampling.params,
            "samples": args.samples,
            "proposals": args.burn_in + args.samples,
            "gradients per face": (args.burn_in + args.samples) * params["L"],
            "sampling seconds": seconds,
            "acceptance": summary(samples.acceptance),
            "acceptance per face": samples.acceptance.tolist(),
            "ESS median over dims": summary(ess_median),
            "ESS min over dims": summary(ess_min),
            "ESS/s (sum of per-face median ESS)": float(ess_median.sum() / seconds),
            "ESS/s (sum of per-face min ESS)": float(ess_min.sum() / seconds),
            "spread in hole": hole_spread,
            "spread of known pixels (blended)": known_spread,
            "spread of G(z) on known pixels": generated_known_spread,
            "known PSNR samples dB": summary(sample_known.mean(axis=1)),
            "known PSNR drop vs Adam dB": summary(adam_known - sample_known.mean(axis=1)),
            "hole PSNR samples dB": summary(sample_hole.mean(axis=1)),
            "hole PSNR sample mean dB": summary(mean_hole),
            "z RMS distance from Adam z": summary(moved.mean(axis=1)),
        }
        details.append(detail)
        rows.append(
            {
                "setting": label,
                "s": seconds,
                "acceptance median": detail["acceptance"]["median"],
                "acceptance range": f"{detail['acceptance']['min']:.2f}-{detail['acceptance']['max']:.2f}",
                "ESS/face (median dim)": float(np.median(ess_median)),
                "ESS/s": detail["ESS/s (sum of per-face median ESS)"],
                "z moved (RMS)": float(np.median(moved.mean(axis=1))),
                "std in hole": hole_spread,
                "std known": known_spread,
                "known PSNR dB": float(sample_known.mean()),
                "hole PSNR dB": float(sample_hole.mean()),
                "hole PSNR of mean dB": float(mean_hole.mean()),
            }
        )
        print_table("so far", rows[-1:])
    adam_row = {
        "setting": "Adam completion (the start)",
        "s": adam_seconds,
        "known PSNR dB": float(adam_known.mean()),
        "hole PSNR dB": float(adam_hole.mean()),
    }
    rows.insert(0, {key: adam_row.get(key) for key in rows[0]})
    load.append(os.getloadavg()[0])
    print_table(f"HMC completions of {args.faces} held-out faces, center mask, {args.samples} samples each", rows)
    write_json(
        "hmc",
        {
            "faces": args.faces,
            "mask": "center",
            "samples": args.samples,
            "burn_in": args.burn_in,
            "adam": {
                "config": {"steps": config.steps, "init": config.init, "losses": [s.name for s in config.losses]},
                "seconds": adam_seconds,
                "known PSNR dB": summary(adam_known),
                "hole PSNR dB": summary(adam_hole),
            },
            "energy gradient seconds (batch)": gradient_seconds,
            "models": {S.GENERATOR: backend.version(S.GENERATOR)},
            "ess estimator": "Geyer initial positive sequence, per face and z dimension, on the kept samples",
            "load_average": load,
            "rows": rows,
            "settings": details,
        },
    )


if __name__ == "__main__":
    main()
