"""`facemath math` and `facemath analogy`: arithmetic on faces in latent space, drawn as pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from facemath_core.base import signatures as S
from facemath_core.base.files import atomic_dir, check_new_dir, check_new_file
from facemath_core.cli.options import (
    AttributesOption,
    FileOverwriteOption,
    IncludeFlaggedOption,
    LatentsOption,
    ModelSource,
    OperatorParamOption,
    OverwriteOption,
    deprecated_alias,
    latents_origin,
    note,
    option_group,
    with_option_groups,
)
from facemath_core.data.images import from_unit, save_png
from facemath_core.host.manager import load_registry
from facemath_core.latent.arithmetic import Evaluator
from facemath_core.latent.latents import Latents, check_frames, decode, save_latents
from facemath_core.latent.space import open_space
from facemath_core.latent.worked_example import analogy_figure, example_grid, j_diagram_latents, work_out

MatchOption = Annotated[
    bool,
    typer.Option(
        "--match",
        help="Draw the exemplars of the added and subtracted mean(GROUP) terms as matched sets: the same values of "
        "every attribute that does not define the groups (docs/arithmetic.md).",
    ),
]
MatchOnOption = Annotated[
    str | None,
    typer.Option(
        "--match-on", metavar="LIST", help="Match on these attributes only (comma-separated); implies --match."
    ),
]
MatchByOption = Annotated[
    str,
    typer.Option(
        "--match-by",
        metavar="labels|oracle",
        help="What says which attributes a face has for --match: the attribute file, or the attribute oracle's "
        "reading of each face's render (implies --match).",
    ),
]


@option_group
class Matching:
    """The --match options of `math` and `analogy` (facemath_core.latent.matching)."""

    match: MatchOption = False
    match_on: MatchOnOption = None
    match_by: MatchByOption = "labels"

    def check(self) -> None:
        if self.match_by not in ("labels", "oracle"):
            raise typer.BadParameter(f"{self.match_by}: labels or oracle", param_hint="--match-by")
        if self.match_on is not None and not self.attributes():
            raise typer.BadParameter("give attribute names separated by commas", param_hint="--match-on")

    def attributes(self) -> list[str] | None:
        """--match-on as a list (None: every attribute that does not define the groups)."""
        if self.match_on is None:
            return None
        return [a.strip() for a in self.match_on.split(",") if a.strip()]

    def use_oracle(self, evaluator, backend) -> None:
        """--match-by oracle: match on the attribute oracle's reading of every face's render, not on the labels."""

        if self.match_by != "oracle":
            return
        backend.require(S.ORACLE)
        space = evaluator.space.latents
        judged = [
            backend.judge(backend.generate(space.z[i : i + 256], space.model)) > 0 for i in range(0, len(space.z), 256)
        ]
        evaluator.match = True
        evaluator.match_labels = (list(backend.metadata(S.ORACLE)["attribute_names"]), np.concatenate(judged))


def _evaluator(
    ctx: typer.Context,
    latents: list[Path],
    attributes: Path | None,
    exemplars: int,
    seed: int,
    include_flagged: bool = False,
    matching: Matching = Matching(),
    param: list[str] | None = None,
):

    matching.check()
    if exemplars < 0:
        raise typer.BadParameter(f"{exemplars}: 0 (the whole group) or more", param_hint="--exemplars")
    registry = load_registry(ctx.obj["plugins"])
    operators = {name: registry.get("operator", name) for name in registry.names("operator")}
    params = registry.params_for("operator", param)  # typed and checked before any file is read
    space = open_space(latents, attributes)
    return Evaluator(
        space,
        operators,
        exemplars=exemplars,
        seed=seed,
        include_flagged=include_flagged,
        match=matching.match,
        match_on=matching.attributes(),
        params=params,
    )


@with_option_groups
def math_command(
    ctx: typer.Context,
    expression: Annotated[str, typer.Argument(metavar="EXPR", help="e.g. 'mean(Smiling & ~Male) - ...'")],
    latents: LatentsOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Result folder.")] = Path("math"),
    attributes: AttributesOption = None,
    exemplars: Annotated[
        int, typer.Option(help="Faces that mean(GROUP) averages, drawn at random from the group; 0 = all.")
    ] = 3,
    jitter: Annotated[float, typer.Option(help="Half-width of the uniform noise of the jittered variants.")] = 0.25,
    seed: Annotated[int, typer.Option(min=0, help="Seed for the exemplars drawn from groups and the jitter.")] = 0,
    overwrite: OverwriteOption = False,
    include_flagged: IncludeFlaggedOption = False,
    param: OperatorParamOption = None,
    matching: Matching = Matching(),
    source: ModelSource = ModelSource(),
):
    """Evaluate face arithmetic and draw it: each term's faces, the result, and its jittered variants.

    Names are latents (image stems) or attributes from the attribute file (groups of faces: Smiling & ~Male).
    Functions: mean, attr, and every operator plugin (lerp, slerp, project_out, ...).
    """
    import json

    if not jitter >= 0 or jitter == float("inf"):  # also refuses NaN
        raise typer.BadParameter(f"{jitter}: must be a finite number >= 0", param_hint="--jitter")
    check_new_dir(out, overwrite, reads=[*latents, *filter(None, [attributes])])
    source.check()
    evaluator = _evaluator(ctx, latents, attributes, exemplars, seed, include_flagged, matching, param)
    space = evaluator.space.latents
    backend = source.open_for(space, latents_origin(latents), note)
    matching.use_oracle(evaluator, backend)
    example = work_out(evaluator, expression, jitter=jitter, seed=seed)
    for line in evaluator.flag_notes() + evaluator.match_notes:
        note(line)

    def render(z):
        return decode(backend, space, z)

    grid = example_grid(example, render)
    z = np.concatenate([example.result.z[None], example.jittered])
    names = ["result", *[f"jitter_{i + 1}" for i in range(len(example.jittered))]]
    result = Latents(
        names=names,
        z=z.astype("float32"),
        family=space.family,
        model=space.model,
        model_version=space.model_version,
        source="arithmetic",
        config={
            "expression": expression,
            "exemplars": exemplars,
            "jitter": jitter,
            "seed": seed,
            "operators": operator_records(evaluator),
        },
        models=space.models,
    )
    terms = [
        {"sign": "+" if s > 0 else "-", "term": text, "faces": [example.names[r] for r in term.rows]}
        for s, text, term in zip(example.signs, example.term_texts, example.terms, strict=True)
    ]
    with atomic_dir(out) as tmp:
        save_latents(tmp / "latents.npz", result)
        save_png(tmp / "result.png", from_unit(render(example.result.z[None]))[0])
        save_png(tmp / "grid.png", grid)
        (tmp / "terms.json").write_text(json.dumps({"expression": expression, "terms": terms}, indent=2) + "\n")
    for term in terms:
        faces = ", ".join(term["faces"][:6]) + (" ..." if len(term["faces"]) > 6 else "")
        typer.echo(f"  {term['sign']} {term['term']}" + (f"   [{faces}]" if faces else ""))
    typer.echo(f"wrote {out}/grid.png, result.png and latents.npz ({space.family} latents)")


@with_option_groups
def analogy_command(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="The corner face: a latent name or any expression.")],
    b: Annotated[str, typer.Argument(help="Reached from A along the top edge.")],
    c: Annotated[str, typer.Argument(help="Reached from A along the left edge.")],
    latents: LatentsOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="The J-diagram PNG.")] = Path("analogy.png"),
    size: Annotated[int, typer.Option("--size", help="Faces along each edge, corners included.")] = 5,
    steps: Annotated[int | None, typer.Option("--steps", hidden=True, help="Deprecated: --size.")] = None,
    overwrite: FileOverwriteOption = False,
    attributes: AttributesOption = None,
    exemplars: Annotated[int, typer.Option(help="Faces that mean(GROUP) averages; 0 = all.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed for exemplars drawn from groups.")] = 0,
    include_flagged: IncludeFlaggedOption = False,
    param: OperatorParamOption = None,
    matching: Matching = Matching(),
    source: ModelSource = ModelSource(),
):
    """Draw a J-diagram (White 2016): A to B across the top, A to C down the side, the parallelogram filled in.

    The cell at (row i, column j) is A + j/(n-1) (B - A) + i/(n-1) (C - A), so the far corner is B + C - A: the
    analogy "A is to B as C is to ?".
    """

    steps = deprecated_alias(steps, size, "--steps", "--size")
    if steps < 2:
        raise typer.BadParameter(f"{steps}: at least 2", param_hint="--size")
    if out.suffix.lower() != ".png":
        raise typer.BadParameter(f"{out}: write a .png", param_hint="--out")
    check_new_file(out, overwrite=overwrite, reads=[*latents, *filter(None, [attributes])])
    source.check()
    evaluator = _evaluator(ctx, latents, attributes, exemplars, seed, include_flagged, matching, param)
    backend = source.open_for(evaluator.space.latents, latents_origin(latents), note)
    check_frames(steps * steps, backend.metadata(evaluator.space.latents.model)["image_size"], "--size")
    matching.use_oracle(evaluator, backend)
    za, zb, zc = (v.z for v in evaluator.latents([a, b, c]))  # one call: --match matches A, B and C together
    for line in evaluator.flag_notes() + evaluator.match_notes:
        note(line)
    images = from_unit(decode(backend, evaluator.space.latents, j_diagram_latents(za, zb, zc, steps)))
    save_png(out, analogy_figure(images, steps, a, b, c))
    typer.echo(f"wrote {out} ({steps}x{steps}; far corner = B + C - A)")


def operator_records(evaluator) -> list[dict]:
    """The operators an expression called, with their parameters and provider, as latents.npz records them."""
    return [
        evaluator.operators[name].record(evaluator.params.get(name))
        for name in sorted(evaluator.called)
        if name in evaluator.operators
    ]
