"""The lambda knob: contextual + lambda x perceptual, swept over lambda, on held-out faces of the shipped models.

For each lambda (the perceptual term's weight on Amos' summed contextual L1; 0 drops the term) the amos2016
projection runs on the same held-out faces, once as plain projection and once as center-mask completion, each a
`ProjectionRun` into memory as `facemath project` / `complete` run it. Measured on G(z):
- known-pixel PSNR (dB) against the input;
- the discriminator's realism score, the mean of D(G(z)) = sigmoid(logit) (the inputs' own score for reference);
- the attribute oracle's agreement with the input: the share of its attributes on which the verdict on G(z)
  (logit > 0) equals its verdict on the input, per face (as report/comparison.py's oracle_agreement), averaged;
- the final contextual and perceptual terms, and the perceptual share of the objective, lambda x P / (C + lambda x P).
Each lambda on the summed scale is also given on the mean scale (`--param contextual.reduce=mean`):
lambda_mean = lambda_sum / known pixel values (12,288 for 64x64x3, 9,216 with the center mask).
A strip of face 0 across lambdas goes to docs/images/lambda_strip.png.

    python bench/lambda.py [--models exported_models] [--faces 16] [--steps 1000] [--modes projection completion]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402
from projection import held_out_faces, inputs_for  # noqa: E402

from facemath_core.base.metrics import mean_ci  # noqa: E402

LAMBDAS = (0.0, 0.003, 0.1, 1.0, 10.0, 100.0, 1000.0)
MASKS = {"projection": "full", "completion": "center"}
STRIP = Path(__file__).parents[1] / "docs" / "images" / "lambda_strip.png"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def sweep(backend, registry, images, mode: str, steps: int, lambdas, input_verdicts):
    """One row per lambda for `mode`, G(z) of face 0 per lambda (for the strip), and face 0's mask."""
    from facemath_core.projection.run import MemorySink, ProjectionRun
    from facemath_core.projection.settings import projection_config

    rows, strip = [], {}
    for lam in lambdas:
        config = projection_config(
            registry,
            preset="amos2016",
            loss_plugins=[f"perceptual={lam:g}"],  # weight 0 drops the term: plain contextual loss
            steps=steps,
            mask=MASKS[mode],
            batch_size=len(images),
        )
        start = time.perf_counter()
        result = ProjectionRun(backend, registry, config).run(inputs_for(images), MemorySink(), warn=lambda _: None)
        seconds = time.perf_counter() - start
        generated, latents = result.generated, result.latents
        known_values = float(result.masks[0].sum() * images.shape[-1])
        logits = np.asarray(backend.discriminate(generated), np.float64)
        realism = sigmoid(logits)
        agreement = ((backend.judge(generated) > 0) == input_verdicts).mean(axis=1)
        contextual = latents.losses["contextual"]
        perceptual = np.logaddexp(0.0, -logits)  # -log D(G(z)), also where lambda 0 left the term out
        share = lam * perceptual / (contextual + lam * perceptual)
        psnr_mean, psnr_ci = mean_ci(latents.psnr)
        realism_mean, realism_ci = mean_ci(realism)
        agreement_mean, agreement_ci = mean_ci(agreement)
        rows.append(
            {
                "mode": mode,
                "lambda (sum)": lam,
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
        print_table(f"{mode}, lambda {lam:g}", [_short(rows[-1])])
        strip[lam] = generated[0]
    return rows, strip, result.masks[0]


def _short(row: dict) -> dict:
    keep = ("mode", "lambda (sum)", "lambda (mean)", "known PSNR dB", "D(G(z))", "oracle agreement", "perceptual share")
    return {k: row[k] for k in keep}


def write_strip(images: np.ndarray, masks: dict, strips: dict, lambdas) -> None:
    from facemath_core.base.drawing import labelled_grid
    from facemath_core.data.images import from_unit, save_png

    tiles, captions = [], []
    for mode, strip in strips.items():
        first = images[0] if masks[mode] is None else np.where(masks[mode][..., None] > 0.5, images[0], 0.0)
        tiles += [first] + [strip[lam] for lam in lambdas]
        captions.append(f"{mode}: the input{' (masked)' if masks[mode] is not None else ''}, then G(z) per lambda")
    headers = ["input"] + [f"{lam:g}" for lam in lambdas]
    STRIP.parent.mkdir(parents=True, exist_ok=True)
    save_png(STRIP, labelled_grid(from_unit(np.stack(tiles)), len(lambdas) + 1, headers=headers, captions=captions))
    print(f"wrote {STRIP}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1000, help="the amos2016 preset's 1000 by default")
    parser.add_argument("--modes", nargs="+", choices=list(MASKS), default=list(MASKS))
    parser.add_argument("--lambdas", nargs="+", type=float, default=list(LAMBDAS))
    args = parser.parse_args()

    from facemath_core.base import signatures as S
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    import_tensorflow_quietly()
    backend, registry = EmbeddedBackend(args.models), load_registry(builtins_only=True)
    images = held_out_faces(args.faces, backend.metadata(S.GENERATOR)["image_size"])
    input_verdicts = backend.judge(images) > 0
    input_realism = mean_ci(sigmoid(backend.discriminate(images)))
    print(f"{args.faces} held-out faces, {args.steps} steps of amos2016 per lambda; D(inputs) = {input_realism[0]:.4f}")

    rows, strips, masks = [], {}, {}
    payload = {
        "faces": args.faces,
        "steps": args.steps,
        "preset": "amos2016 (contextual summed, perceptual -log D(G(z)), Adam 0.01, clip, uniform init)",
        "lambdas": args.lambdas,
        "oracle_attributes": len(backend.metadata(S.ORACLE)["attribute_names"]),
        "input_realism": {"mean": input_realism[0], "ci95": input_realism[1]},
        "models": {m: backend.version(m) for m in (S.GENERATOR, S.DISCRIMINATOR, S.ORACLE)},
    }
    for mode in args.modes:
        mode_rows, strips[mode], mask = sweep(backend, registry, images, mode, args.steps, args.lambdas, input_verdicts)
        rows += mode_rows
        masks[mode] = None if MASKS[mode] == "full" else mask
        write_json("lambda", {**payload, "modes": list(strips), "rows": rows})  # kept after every mode
    print_table(f"the lambda knob: {args.faces} held-out faces, {args.steps} steps", [_short(r) for r in rows])
    write_strip(images, masks, strips, args.lambdas)


if __name__ == "__main__":
    main()
