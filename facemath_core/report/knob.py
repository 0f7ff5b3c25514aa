"""The lambda knob: contextual + lambda x perceptual, swept over lambda on the same faces (`compare --lambdas`,
bench/lambda.py).

For each lambda (the perceptual term's weight on Amos' summed contextual L1; 0 drops the term) the amos2016
projection runs on the faces, once as plain projection (full mask) and once as center-mask completion, each a
`ProjectionRun` into memory as `facemath project` / `complete` run it (each face seeded by its key). Measured on G(z):
- known-pixel PSNR (dB) against the input;
- the discriminator's realism score, the mean of D(G(z)) = sigmoid(logit);
- the attribute oracle's agreement with the input: per face, the share of the judged attributes on which its verdict
  on G(z) (logit > 0) equals its verdict on the input (as the report's reconstruction table), averaged;
- the final contextual and perceptual terms, and the perceptual share of the objective, lambda x P / (C + lambda x P).
Each lambda on the summed scale is also given on the mean scale (`--param contextual.reduce=mean`):
lambda_mean = lambda_sum / known pixel values (12,288 for 64x64x3, 9,216 with the center mask).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from facemath_core.base.drawing import labelled_grid
from facemath_core.base.metrics import mean_ci
from facemath_core.data.images import from_unit
from facemath_core.projection.run import JobInputs, MemorySink, ProjectionRun
from facemath_core.projection.settings import projection_config

LAMBDAS = (0.0, 0.003, 0.1, 1.0, 10.0, 100.0, 1000.0)
MASKS = {"projection": "full", "completion": "center"}
REALER_D = 0.1  # D(G(z)) risen this much over the smallest lambda: the realism trade is plain


def sigmoid(x) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def lambda_sweep(
    backend,
    registry,
    images: np.ndarray,
    mode: str,
    steps: int,
    lambdas: Sequence[float],
    *,
    names: list[str] | None = None,
    columns: list[int] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    on_row: Callable[[dict], None] | None = None,
) -> tuple[list[dict], dict[float, np.ndarray], np.ndarray]:
    """One row per lambda for `mode` ("projection" or "completion"), G(z) of face 0 per lambda (for the strip), and
    face 0's mask. `names` key each face's random draws (default face00000.png ...); `columns` are the oracle
    attributes judged (default all); `batch_size` defaults to all faces at once."""
    names = list(names) if names is not None else [f"face{i:05d}.png" for i in range(len(images))]
    input_verdicts = _verdicts(backend, images, columns)
    rows, strip, mask = [], {}, None
    for lam in lambdas:
        config = projection_config(
            registry,
            preset="amos2016",
            loss_plugins=[f"perceptual={lam:g}"],  # weight 0 drops the term: plain contextual loss
            steps=steps,
            mask=MASKS[mode],
            seed=seed,
            batch_size=batch_size or len(images),
        )
        start = time.perf_counter()
        inputs = JobInputs(list(names), list(names), images, [])
        result = ProjectionRun(backend, registry, config).run(inputs, MemorySink(), warn=lambda _: None)
        seconds = time.perf_counter() - start
        generated, latents = result.generated, result.latents
        known_values = float(result.masks[0].sum() * images.shape[-1])
        logits = np.asarray(backend.discriminate(generated), np.float64).reshape(len(images))
        agreement = (_verdicts(backend, generated, columns) == input_verdicts).mean(axis=1)
        contextual = np.asarray(latents.losses["contextual"], np.float64)
        perceptual = np.logaddexp(0.0, -logits)  # -log D(G(z)), also where lambda 0 left the term out
        share = lam * perceptual / (contextual + lam * perceptual)
        psnr_mean, psnr_ci = mean_ci(latents.psnr)
        realism_mean, realism_ci = mean_ci(sigmoid(logits))
        agreement_mean, agreement_ci = mean_ci(agreement)
        rows.append(
            {
                "mode": mode,
                "lambda (sum)": float(lam),
                "lambda (mean)": lam / known_values,
                "known PSNR dB": psnr_mean,
                "PSNR ci95": psnr_ci,
                "D(G(z))": realism_mean,
                "D ci95": realism_ci,
                "oracle agreement": agreement_mean,
                "agreement ci95": agreement_ci,
                "contextual (sum)": float(contextual.mean()),
                "-log D(G(z))": float(perceptual.mean()),
                "perceptual share": float(share.mean()),
                "known pixel values": int(known_values),
                "seconds": seconds,
            }
        )
        if on_row is not None:
            on_row(rows[-1])
        strip[float(lam)], mask = generated[0], result.masks[0]
    return rows, strip, mask


def _verdicts(backend, images: np.ndarray, columns: list[int] | None) -> np.ndarray:
    logits = np.asarray(backend.judge(images))
    return (logits if columns is None else logits[:, columns]) > 0


def strip_grid(
    face: np.ndarray, masks: dict[str, np.ndarray | None], strips: dict[str, dict[float, np.ndarray]], lambdas
) -> np.ndarray:
    """One row per mode: the input (masked where the mode has a hole), then G(z) per lambda; uint8, labelled."""
    tiles, captions = [], []
    for mode, strip in strips.items():
        mask = masks.get(mode)
        first = face if mask is None else np.where(mask[..., None] > 0.5, face, 0.0)
        tiles += [first] + [strip[float(lam)] for lam in lambdas]
        captions.append(f"{mode}: the input{' (masked)' if mask is not None else ''}, then G(z) per lambda")
    headers = ["input"] + [f"{lam:g}" for lam in lambdas]
    return labelled_grid(from_unit(np.stack(tiles)), len(lambdas) + 1, headers=headers, captions=captions)


def knob_finding(rows: list[dict]) -> str:
    """One sentence for one mode's rows (in lambda order): from which lambda D(G(z)) has risen by `REALER_D` or more
    over the smallest lambda, and what known-pixel PSNR it costs there; computed from the rows."""
    base = min(rows, key=lambda r: r["lambda (sum)"])
    mode, others = base["mode"], sorted((r for r in rows if r is not base), key=lambda r: r["lambda (sum)"])
    realer = next((r for r in others if r["D(G(z))"] - base["D(G(z))"] >= REALER_D), None)
    start = (
        f"{mode}: from lambda_sum {base['lambda (sum)']:g} (D(G(z)) {base['D(G(z))']:.3f}, "
        f"{base['known PSNR dB']:.2f} dB)"
    )
    if realer is None:
        last = others[-1] if others else base
        return (
            f"{start}, D(G(z)) does not rise by {REALER_D} at any lambda swept: at lambda_sum "
            f"{last['lambda (sum)']:g} it is {last['D(G(z))']:.3f} ({last['D(G(z))'] - base['D(G(z))']:+.3f}), "
            f"with known-pixel PSNR {last['known PSNR dB']:.2f} dB "
            f"({last['known PSNR dB'] - base['known PSNR dB']:+.2f} dB)."
        )
    return (
        f"{start}, D(G(z)) first rises by {REALER_D} or more at lambda_sum {realer['lambda (sum)']:g} = lambda_mean "
        f"{realer['lambda (mean)']:.3g} (to {realer['D(G(z))']:.3f}), where known-pixel PSNR is "
        f"{realer['known PSNR dB']:.2f} dB ({realer['known PSNR dB'] - base['known PSNR dB']:+.2f} dB) and oracle "
        f"agreement {realer['oracle agreement']:.3f} ({realer['oracle agreement'] - base['oracle agreement']:+.3f})."
    )
