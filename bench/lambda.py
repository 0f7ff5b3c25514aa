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
A strip of face 0 across lambdas goes to docs/images/lambda_strip.png. The sweep itself is
`facemath_core.report.knob.lambda_sweep`, the one `facemath compare --lambdas` runs.

    python bench/lambda.py [--models exported_models] [--faces 16] [--steps 1000] [--modes projection completion]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402
from projection import held_out_faces  # noqa: E402

from facemath_core.base.metrics import mean_ci  # noqa: E402
from facemath_core.data.images import save_png  # noqa: E402
from facemath_core.report.knob import LAMBDAS, MASKS, lambda_sweep, sigmoid, strip_grid  # noqa: E402

STRIP = Path(__file__).parents[1] / "docs" / "images" / "lambda_strip.png"


def _short(row: dict) -> dict:
    keep = ("mode", "lambda (sum)", "lambda (mean)", "known PSNR dB", "D(G(z))", "oracle agreement", "perceptual share")
    return {k: row[k] for k in keep}


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
        mode_rows, strips[mode], mask = lambda_sweep(
            backend,
            registry,
            images,
            mode,
            args.steps,
            args.lambdas,
            on_row=lambda row: print_table(f"{row['mode']}, lambda {row['lambda (sum)']:g}", [_short(row)]),
        )
        rows += mode_rows
        masks[mode] = None if MASKS[mode] == "full" else mask
        write_json("lambda", {**payload, "modes": list(strips), "rows": rows})  # kept after every mode
    print_table(f"the lambda knob: {args.faces} held-out faces, {args.steps} steps", [_short(r) for r in rows])
    STRIP.parent.mkdir(parents=True, exist_ok=True)
    save_png(STRIP, strip_grid(images[0], masks, strips, args.lambdas))
    print(f"wrote {STRIP}")


if __name__ == "__main__":
    main()
