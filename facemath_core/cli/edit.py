"""`facemath edit`: change the faces of a photo along attribute vectors and put them back into the photo.

Every face of the photo is detected and aligned to the model's landmark template (as `facemath align`), projected
onto the generator with `facemath project`'s defaults (or encoded with the VAE's encoder for `--model vae`), moved
along the attribute vectors fitted from a latents file (White's least squares, as `facemath attributes` fits them),
rendered, warped back with the inverse of its alignment and blended into the photo by a blender plugin over the
face region. Pixels outside the pasted regions keep the photo's values exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.files import check_new_file
from facemath_core.base.metrics import known_psnr
from facemath_core.base.text import plural, shown
from facemath_core.cli.align import FaceOptions
from facemath_core.cli.options import (
    AttributesOption,
    FileOverwriteOption,
    ModelSource,
    note,
    with_option_groups,
)
from facemath_core.data.align import paste
from facemath_core.data.images import from_unit, read_image, save_png, to_unit
from facemath_core.host.manager import load_registry
from facemath_core.latent.attribute_vectors import attribute_vectors, check_vector
from facemath_core.latent.space import LatentSpace, open_space, without_flagged
from facemath_core.projection.flags import domain_warnings, out_of_domain
from facemath_core.projection.run import JobInputs, MemorySink, ProjectionRun
from facemath_core.projection.settings import projection_config

DECODERS = {"gan": S.GENERATOR, "vae": S.VAE_DECODER}


def parse_moves(pairs: list[str]) -> list[tuple[str, float]]:
    """--attr NAME=AMOUNT, each a finite number of attribute vectors (negative takes the attribute away)."""
    moves = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r}: write NAME=AMOUNT, e.g. Smiling=1.5", param_hint="--attr")
        try:
            amount = float(value)
        except ValueError:
            raise typer.BadParameter(f"{pair!r}: {value!r} is not a number", param_hint="--attr") from None
        if not math.isfinite(amount):
            raise typer.BadParameter(f"{pair!r}: the amount must be a finite number", param_hint="--attr")
        moves.append((name, amount))
    return moves


def edit_vectors(space: LatentSpace, moves: list[tuple[str, float]], origin: str) -> np.ndarray:
    """The change of z that `moves` make, from vectors fitted on the space's labelled faces."""
    labels = space.require_labels("facemath edit")
    vectors = attribute_vectors(space.z, labels, space.attribute_names)
    delta = np.zeros(space.z.shape[1], np.float32)
    for name, amount in moves:
        if name not in space.attribute_names:
            known = ", ".join(space.attribute_names)
            raise FacemathError(f"--attr {name}={amount:g}: {origin} has no attribute {name!r} (it has: {known})")
        delta += amount * check_vector(vectors, labels, space.attribute_names, name)
    return delta


def check_same_model(space: LatentSpace, family: str, backend, origin: str) -> str:
    """The decoder the edit projects onto; vectors fitted on another model's or version's latents are refused."""
    latents, decoder = space.latents, DECODERS[family]
    if latents.model != decoder:
        raise FacemathError(
            f"--vectors {origin}: latents of the {latents.family} model {latents.model}, but this edit uses "
            f"{decoder} (--model {family}); fit the vectors on latents of {decoder}"
        )
    version = backend.version(decoder)
    if latents.model_version and latents.model_version != version:
        raise FacemathError(
            f"--vectors {origin}: fitted on {decoder} version {latents.model_version}, but this edit uses version "
            f"{version}; use --model-version {latents.model_version} or vectors from version {version}"
        )
    z_dim = backend.metadata(decoder)["z_dim"]
    if latents.z.shape[1] != z_dim:
        raise FacemathError(
            f"--vectors {origin}: latents of {latents.z.shape[1]} dimensions, but {decoder} version {version} takes "
            f"{z_dim}"
        )
    return decoder


@with_option_groups
def edit_command(
    ctx: typer.Context,
    photo: Annotated[Path, typer.Argument(help="The photo whose faces to edit.")],
    vectors: Annotated[
        Path,
        typer.Option("--vectors", help="latents.npz of labelled faces of the same model, to fit attribute vectors on."),
    ],
    attr: Annotated[
        list[str],
        typer.Option("--attr", help="NAME=AMOUNT: move each face by AMOUNT of NAME's vector (repeatable)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The edited photo (.png), the photo's size.")],
    model: Annotated[str, typer.Option(help="gan (project onto the generator) or vae (encode with the VAE).")] = "gan",
    blend: Annotated[
        str, typer.Option(help="Blender plugin pasting each face back: feather, poisson, ...")
    ] = "feather",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Blender parameter NAME.KEY=VALUE, e.g. feather.radius=5.")
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Projection steps (default: project's, 1000).")] = None,
    attributes: AttributesOption = None,
    overwrite: FileOverwriteOption = False,
    faces: FaceOptions = FaceOptions(),
    source: ModelSource = ModelSource(),
):
    """Edit the faces of a photo along attribute vectors: detect, align, project (or encode), move, render, warp
    back and blend into the photo. The output has the photo's size; pixels outside the pasted faces are unchanged."""
    if model not in DECODERS:
        raise typer.BadParameter(f"{model!r}: choose gan or vae", param_hint="--model")
    if out.suffix.lower() != ".png":
        raise typer.BadParameter(
            f"{out}: write a .png (lossless: the photo's other pixels stay exact)", param_hint="--out"
        )
    moves = parse_moves(attr)
    check_new_file(out, overwrite=overwrite, reads=[photo, vectors])
    source.check()
    registry = load_registry(ctx.obj["plugins"])
    blender = registry.get("blender", blend, option="--blend")
    blend_params = registry.params_for("blender", param, used=[blend]).get(blend, dict(blender.defaults))
    space = open_space([vectors], attributes)
    space, skipped = without_flagged(space)
    if skipped:
        note(f"the vectors leave out {plural(len(skipped), 'flagged face')} of {vectors} (failed projections)")
    backend = source.open()
    decoder = check_same_model(space, model, backend, str(vectors))
    delta = edit_vectors(space, moves, str(vectors))
    size = backend.metadata(decoder)["image_size"]
    template = faces.template_for(backend, decoder, size)
    aligner = faces.aligner(registry, template)
    picture = read_image(photo)
    found = aligner.align(picture, str(photo), photo.name)
    crops = to_unit(np.stack([f.crop for f in found]))
    names = [f.name for f in found]
    if model == "gan":
        config = projection_config(registry, model="gan", steps=steps)
        with ProjectionRun(backend, registry, config) as run:
            result = run.run(JobInputs(names, [str(photo)] * len(names), crops, []), MemorySink(), warn=note)
        z, psnr = result.latents.z, result.latents.psnr
        marks = result.latents.out_of_domain
        metadata, judged = backend.metadata(decoder), decoder
    else:
        z = backend.encode(crops)[0]
        psnr = known_psnr(crops, backend.generate(z, decoder), np.ones(crops.shape[:3], np.float32))
        metadata, judged = backend.metadata(S.VAE_ENCODER), S.VAE_ENCODER
        marks = out_of_domain(psnr, metadata)
    for line in domain_warnings(names, psnr, marks, metadata, judged, backend.version(judged)):
        typer.echo(f"warning: {shown(line)}", err=True)
    edited = from_unit(backend.generate(np.asarray(z, np.float32) + delta[None], decoder))
    result_image, changed = paste(picture, list(zip(found, edited, strict=True)), template, blender, blend_params)
    save_png(out, result_image)
    change = ", ".join(f"{name} {amount:+g}" for name, amount in moves)
    typer.echo(
        f"edited {plural(len(found), 'face')} of {shown(photo)} ({change}) into {out}: {picture.shape[1]}x"
        f"{picture.shape[0]}, {int(changed.sum()):,} pixels pasted, the rest the photo's; {decoder} version "
        f"{backend.version(decoder)}, reconstruction PSNR {', '.join(f'{p:.1f}' for p in psnr)} dB"
    )
