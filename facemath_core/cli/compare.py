"""`facemath compare`: the GAN-vs-VAE report on held-out labelled faces."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.files import check_new_dir
from facemath_core.cli.options import (
    ModelSource,
    OverwriteOption,
    with_option_groups,
)
from facemath_core.host.manager import load_registry
from facemath_core.report.comparison import CompareConfig, run_compare
from facemath_core.report.document import write_report


@with_option_groups
def compare_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Held-out labelled faces (a folder with list_attr_celeba.txt).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (report.md, report.html, figures).")] = Path(
        "report"
    ),
    count: Annotated[
        int, typer.Option("--count", "-n", help="Faces drawn from --data (seeded); all of them if fewer.")
    ] = 256,
    steps: Annotated[int, typer.Option(help="Projection steps (amos2016 settings otherwise).")] = 1000,
    trials: Annotated[int, typer.Option(help="Analogies per attribute and exemplar count.")] = 40,
    exemplars: Annotated[str, typer.Option(help="Exemplar counts per concept to compare, comma-separated.")] = "1,3",
    held_out: Annotated[float, typer.Option(help="Share of the faces kept out of fitting attribute vectors.")] = 0.3,
    pivot: Annotated[str, typer.Option(help="The attribute analogies carry over (smiling woman -> man).")] = "Male",
    seed: Annotated[int, typer.Option(min=0, help="Seed for the faces drawn, projection, splits and exemplars.")] = 0,
    lambdas: Annotated[
        str | None,
        typer.Option(
            help="Also sweep the perceptual weight lambda (summed scale, comma-separated, e.g. 0,0.1,10,1000): "
            "projection and completion at each, a 'lambda knob' section. Default: no sweep."
        ),
    ] = None,
    latents: Annotated[
        list[str] | None,
        typer.Option(
            "--latents",
            help="SLUG=FILE: take a projection method's z (gan, hybrid, in-domain, vaegan-hybrid) from a "
            "`facemath project` run's latents.npz (shards joined by `facemath latents merge`) instead of projecting "
            "here; checked to be the same faces, models and settings. Repeatable.",
        ),
    ] = None,
    overwrite: OverwriteOption = False,
    source: ModelSource = ModelSource(),
):
    """Project, encode and hybrid-project the same held-out faces; compare reconstruction, attribute vectors and
    arithmetic; write report.md and report.html with figures."""

    try:
        counts = tuple(int(v) for v in exemplars.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{exemplars!r}: comma-separated whole numbers, e.g. 1,3", param_hint="--exemplars"
        ) from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter(f"{exemplars!r}: each count must be 1 or more", param_hint="--exemplars")
    for value, name in ((count, "--count"), (steps, "--steps"), (trials, "--trials")):
        if value < 1:
            raise typer.BadParameter(f"{value}: must be 1 or more", param_hint=name)
    if not 0.0 < held_out < 1.0:  # checked now: scoring only starts after minutes of projection
        raise typer.BadParameter(f"{held_out}: a fraction between 0 and 1", param_hint="--held-out")
    weights = parse_lambdas(lambdas) if lambdas is not None else ()
    fed = parse_fed_latents(latents or [])
    check_new_dir(out, overwrite, reads=[data, *(Path(path) for _, path in fed)])
    source.check()
    config = CompareConfig(count, steps, counts, trials, held_out, pivot, seed, weights, fed)
    registry = load_registry(ctx.obj["plugins"])
    result = run_compare(data, source.open(), registry, config, progress=lambda m: typer.echo(m, err=True))
    write_report(result, out)
    for method, entry in result.methods.items():
        seconds = entry["seconds_per_image"]
        typer.echo(
            f"{method:22s} PSNR {entry['psnr'][0]:.2f} dB  SSIM {entry['ssim'][0]:.3f}  "
            f"Frechet {entry['frechet'][0]:.1f}  " + (f"{seconds:.2f} s/image" if seconds is not None else "")
        )
    typer.echo(f"wrote {out}/report.md and report.html")


def parse_lambdas(text: str) -> tuple[float, ...]:
    """`--lambdas 0,0.1,10`: finite weights of 0 or more, each once, in increasing order."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: comma-separated numbers, e.g. 0,0.1,10,1000", param_hint="--lambdas"
        ) from None
    if not values:
        raise typer.BadParameter(f"{text!r}: no lambda given, e.g. 0,0.1,10,1000", param_hint="--lambdas")
    for value in values:
        if not math.isfinite(value) or value < 0:
            raise typer.BadParameter(
                f"{value:g}: each lambda must be a finite number, 0 or more", param_hint="--lambdas"
            )
    return tuple(sorted(set(values)))


def parse_fed_latents(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`--latents SLUG=FILE`, each method once; which slugs exist and what the files hold is checked with the
    models (report.comparison.fed_latents)."""
    fed: dict[str, str] = {}
    for value in values:
        slug, sep, path = value.partition("=")
        if not sep or not slug.strip() or not path.strip():
            raise typer.BadParameter(f"{value!r}: SLUG=FILE, e.g. gan=runs/gan/latents.npz", param_hint="--latents")
        if slug.strip() in fed:
            raise typer.BadParameter(f"{slug.strip()}: given twice", param_hint="--latents")
        fed[slug.strip()] = path.strip()
    return tuple(fed.items())
