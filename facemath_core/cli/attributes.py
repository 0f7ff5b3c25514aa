"""`facemath attributes`: an attribute vector per attribute, and how well each one works."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base import signatures as S
from facemath_core.base.drawing import labelled_grid
from facemath_core.base.files import atomic_dir, check_new_dir, to_json
from facemath_core.base.tables import markdown_table
from facemath_core.base.text import plural
from facemath_core.cli.options import (
    AttributesOption,
    IncludeFlaggedOption,
    LatentsOption,
    ModelSource,
    OverwriteOption,
    latents_origin,
    note,
    with_option_groups,
)
from facemath_core.data.images import from_unit, save_png
from facemath_core.latent.latents import decode
from facemath_core.latent.quality import score_vectors, split_rows, too_few_lines
from facemath_core.latent.space import open_space, without_flagged


@with_option_groups
def attributes_command(
    latents: LatentsOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Result folder.")] = Path("attributes"),
    attributes: AttributesOption = None,
    held_out: Annotated[float, typer.Option(help="Share of the latents kept out of fitting, for scoring.")] = 0.3,
    scale: Annotated[float, typer.Option(help="Multiple of the vector added to faces that lack the attribute.")] = 1.0,
    raw: Annotated[
        bool, typer.Option("--raw", help="Plain difference of means, without White's bias correction.")
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the fit / held-out split.")] = 0,
    overwrite: OverwriteOption = False,
    include_flagged: IncludeFlaggedOption = False,
    source: ModelSource = ModelSource(),
):
    """Fit an attribute vector per attribute and score it on held-out latents: AUC as a linear classifier,
    and, judged by the attribute oracle, the success and preservation rates of adding it to faces without it."""
    import numpy as np

    check_new_dir(out, overwrite, reads=[*latents, *filter(None, [attributes])])
    source.check()
    space = open_space(latents, attributes)
    space.require_labels("facemath attributes")
    if not include_flagged:
        space, skipped = without_flagged(space)
        if skipped:
            note(f"skipped {plural(len(skipped), 'flagged face')} (failed projections); --include-flagged uses them")
    backend = source.open_for(space.latents, latents_origin(latents), note)

    def render(z):
        return decode(backend, space.latents, z)

    oracle_names = backend.metadata(S.ORACLE)["attribute_names"] if backend.has(S.ORACLE) else []
    vectors, scores = score_vectors(
        space, render, backend.judge, oracle_names, held_out=held_out, seed=seed, scale=scale, corrected=not raw
    )
    rows = [
        {
            "attribute": s.attribute,
            "AUC": f"{s.auc:.3f} ± {1.96 * s.auc_se:.3f}" if s.auc_measured else "n/a (too few)",
            "held-out +/-": f"{s.positives}/{s.negatives}",
            "edited faces": s.edited,
            "success": f"{s.success:.2f} [{s.success_low:.2f}, {s.success_high:.2f}]" if s.success_measured else "n/a",
            "preserved": f"{s.preserved:.3f}" if s.success_measured else "n/a",
            "all others kept": f"{s.all_preserved:.2f}" if s.success_measured else "n/a",
        }
        for s in scores
    ]
    for line in too_few_lines(scores):
        typer.echo(f"warning: {line}", err=True)
    # One row per judged attribute: four faces without it, then the same faces with the vector added.
    # Faces from the held-out part (the ones scored) first, topped up from the fitted part; rows of fewer than
    # four faces are left out so every row lines up.
    examples, titles = [], []
    names = space.attribute_names
    fit, test = split_rows(len(space.z), held_out, seed)
    for s in [s for s in scores if s.edited][:12]:
        k = names.index(s.attribute)
        lacking = np.concatenate([test[~space.labels[test, k]], fit[~space.labels[fit, k]]])[:4]
        if len(lacking) < 4:
            continue
        examples.append(from_unit(render(np.concatenate([space.z[lacking], space.z[lacking] + scale * vectors[k]]))))
        titles.append(f"{s.attribute}: 4 faces without it, then the same faces + {scale:g} x its vector")
    with atomic_dir(out) as tmp:
        np.savez(
            tmp / "vectors.npz",
            attribute_names=np.array(names),
            vectors=vectors,
            family=np.array(space.latents.family),
            model=np.array(space.latents.model),
            corrected=np.array(not raw),
        )
        summary = {
            "latents": [str(p) for p in latents],
            "labels": space.label_source,
            "held_out": held_out,
            "scale": scale,
            "bias_corrected": not raw,
            "seed": seed,
            "scores": [s.as_dict() for s in scores],
        }
        (tmp / "attributes.json").write_text(to_json(summary))
        (tmp / "attributes.md").write_text(
            f"# Attribute vectors ({space.latents.family} latents, {len(space.z)} faces, "
            f"{held_out:.0%} held out)\n\n" + markdown_table(rows) + "\n"
        )
        if examples:
            headers = ["before"] * 4 + ["after"] * 4
            save_png(tmp / "examples.png", labelled_grid(np.concatenate(examples), 8, headers, titles))
    typer.echo(f"{plural(len(space.z), 'face')}: {len(fit)} fitted, {len(test)} held out and scored")
    typer.echo(markdown_table(rows))
    typer.echo(f"wrote {out}/vectors.npz, attributes.json, attributes.md" + (", examples.png" if examples else ""))
