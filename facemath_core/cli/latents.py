"""`facemath encode`, `facemath render` and `facemath interpolate`: VAE latents, and latents back to faces."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base import signatures as S
from facemath_core.base.drawing import labelled_grid
from facemath_core.base.files import atomic_dir, atomic_file, check_new_dir, check_new_file
from facemath_core.base.metrics import known_psnr
from facemath_core.base.text import plural, shown
from facemath_core.cli.align import AlignOption, FaceOptions, aligned_inputs, mark_domain
from facemath_core.cli.options import (
    FileOverwriteOption,
    ModelSource,
    OperatorParamOption,
    OverwriteOption,
    deprecated_alias,
    note,
    with_option_groups,
)
from facemath_core.data.images import from_unit, save_png
from facemath_core.host.contracts import check_operator, interpolate
from facemath_core.host.manager import load_registry
from facemath_core.latent.latents import check_frames, decode, encode_images, find, load_latents, save_latents
from facemath_core.projection.run import load_inputs
from facemath_core.projection.shards import load_shards, merge, write_merged


class EncoderFamily(str, enum.Enum):
    """The families with a variational encoder (`signatures.VARIATIONAL_ENCODERS`)."""

    vae = "vae"
    vaegan = "vaegan"


@with_option_groups
def encode_command(
    ctx: typer.Context,
    images: Annotated[list[str], typer.Argument(help="Image files or folders of images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Result folder (latents.npz, reconstructions/).")] = Path(
        "encodings"
    ),
    no_resize: Annotated[
        bool, typer.Option("--no-resize", help="Refuse images that are not the model's size.")
    ] = False,
    overwrite: OverwriteOption = False,
    model: Annotated[
        EncoderFamily, typer.Option(help="Whose encoder: the vae's or the vaegan's (VAE-GAN, Larsen et al. 2016).")
    ] = EncoderFamily.vae,
    align: AlignOption = False,
    source: ModelSource = ModelSource(),
    faces: FaceOptions = FaceOptions(),
):
    """Encode images with a VAE's encoder into a latents.npz like projection's (z = the posterior mean)."""
    import numpy as np

    check_new_dir(out, overwrite, reads=images)
    backend = source.open()
    encoder = S.ENCODER_OF[S.FAMILIES[model.value]]
    size = backend.metadata(encoder)["image_size"]
    if align:  # each face of each photo, aligned to the model's landmark template
        aligner = faces.aligner(load_registry(ctx.obj["plugins"]), faces.template_for(backend, encoder, size))
        inputs, _ = aligned_inputs(aligner, images)
    else:
        inputs = load_inputs(images, size, resize=not no_resize)
    for path in inputs.resized:
        typer.echo(f"warning: {shown(path)}: resized to {size}x{size} (use --no-resize to refuse)", err=True)
    latents = encode_images(backend, inputs.names, inputs.paths, inputs.images, model.value)
    reconstructions = decode(backend, latents, latents.z)
    psnr = known_psnr(inputs.images, reconstructions, np.ones(inputs.images.shape[:3], np.float32))
    domain = mark_domain(latents, inputs, psnr, backend.metadata(encoder), encoder)
    with atomic_dir(out) as tmp:
        save_latents(tmp / "latents.npz", latents)
        for name, image in zip(latents.names, reconstructions, strict=True):
            save_png(tmp / "reconstructions" / f"{Path(name).stem}.png", from_unit(image))
        pairs = [im for pair in zip(inputs.images, reconstructions, strict=True) for im in pair]
        captions = [
            f"{name}   PSNR {p:.1f} dB{domain.caption(i)}"
            for i, (name, p) in enumerate(zip(latents.names, psnr, strict=True))
        ]
        sheet = labelled_grid(
            from_unit(np.stack(pairs)),
            2,
            headers=["original", "reconstruction"],
            captions=captions,
            flagged=domain.rows,
        )
        save_png(tmp / "contact_sheet.png", sheet)
    typer.echo(
        f"encoded {plural(len(latents.names), 'image')} into {out} with {encoder} version "
        f"{latents.models.get(encoder)} ({backend.describe()})"
    )
    domain.report()


@with_option_groups
def render_command(
    latents_file: Annotated[Path, typer.Argument(metavar="LATENTS", help="A latents.npz (projection or encoding).")],
    names: Annotated[
        list[str] | None,
        typer.Option("--names", help="Only these latents: file names or stems, comma-separated or repeated."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for one PNG per latent.")] = Path("renders"),
    overwrite: OverwriteOption = False,
    source: ModelSource = ModelSource(),
):
    """Turn latents back into images with the model that made them (GAN generator or VAE decoder)."""

    check_new_dir(out, overwrite, reads=[latents_file])
    source.check()
    latents = load_latents(latents_file)
    wanted = [n for value in names or [] for n in value.split(",") if n]
    rows = [find(latents, n, str(latents_file)) for n in wanted] if wanted else list(range(len(latents.names)))
    images = decode(source.open_for(latents, str(latents_file), note), latents, latents.z[rows])
    with atomic_dir(out) as tmp:
        for row, image in zip(rows, images, strict=True):
            save_png(tmp / f"{Path(latents.names[row]).stem}.png", from_unit(image))
    typer.echo(f"rendered {len(rows)} {latents.family} latents into {out}")


@with_option_groups
def interpolate_command(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="Two or more latent names (file names or stems), A B [C ...].")],
    latents_file: Annotated[Path, typer.Option("--latents", help="The latents.npz the names are in.")],
    frames: Annotated[int, typer.Option("--frames", "-n", help="Frames between consecutive faces, ends included.")] = 8,
    steps: Annotated[int | None, typer.Option("--steps", hidden=True, help="Deprecated: --frames.")] = None,
    method: Annotated[str, typer.Option(help="An operator plugin taking (a, b, t): lerp or slerp.")] = "slerp",
    param: OperatorParamOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="A .png strip or an animated .gif.")] = Path(
        "interpolation.png"
    ),
    overwrite: FileOverwriteOption = False,
    source: ModelSource = ModelSource(),
):
    """Walk through latent space from A to B (to C ...) and draw the faces along the way."""
    import numpy as np

    if len(names) < 2:
        raise typer.BadParameter("give at least two latent names", param_hint="NAMES")
    steps = deprecated_alias(steps, frames, "--steps", "--frames")
    if steps < 2:
        raise typer.BadParameter(f"{steps}: at least 2 frames", param_hint="--frames")
    if out.suffix.lower() not in (".png", ".gif"):
        raise typer.BadParameter(f"{out}: write a .png or a .gif", param_hint="--out")
    registry = load_registry(ctx.obj["plugins"])
    operator = registry.get("operator", method, option="--method")
    params = registry.params_for("operator", param, used=[method]).get(method, dict(operator.defaults))
    check_operator(operator, 3, f"--method {method}", params)
    source.check()
    check_new_file(out, overwrite=overwrite, reads=[latents_file])
    latents = load_latents(latents_file)
    backend = source.open_for(latents, str(latents_file), note)
    check_frames((len(names) - 1) * (steps - 1) + 1, backend.metadata(latents.model)["image_size"], "--frames")
    anchors = [latents.z[find(latents, n, str(latents_file))] for n in names]
    # Each segment without its last frame (the next segment's first), the final segment with it.
    ts = np.linspace(0.0, 1.0, steps)
    path = [
        interpolate(operator, a, b, ts if i == len(anchors) - 2 else ts[:-1], params)
        for i, (a, b) in enumerate(zip(anchors, anchors[1:], strict=False))
    ]
    frames = from_unit(decode(backend, latents, np.concatenate(path)))
    if out.suffix.lower() == ".gif":
        from PIL import Image

        pictures = [Image.fromarray(f) for f in frames]
        with atomic_file(out) as handle:
            pictures[0].save(handle, format="GIF", save_all=True, append_images=pictures[1:], duration=120, loop=0)
    else:
        save_png(out, labelled_grid(frames, len(frames), headers=strip_headers(names, steps)))
    typer.echo(f"wrote {out} ({len(frames)} frames, {method})")


def strip_headers(names: list[str], steps: int) -> list[str]:
    """The header of each frame of an interpolation strip: the faces walked through are named over their frames,
    the frames between two of them say how far along they are (t)."""
    count = (len(names) - 1) * (steps - 1) + 1
    return [
        Path(names[i // (steps - 1)]).stem if i % (steps - 1) == 0 else f"t={(i % (steps - 1)) / (steps - 1):.2f}"
        for i in range(count)
    ]


app = typer.Typer(help="Work on latents files: merge the shards of a bulk projection.", no_args_is_help=True)


@app.command("merge", no_args_is_help=True)
def merge_command(
    sources: Annotated[
        list[str], typer.Argument(metavar="SHARD...", help="The shards' result folders (or their latents.npz).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Result folder for the merged latents.")],
    overwrite: OverwriteOption = False,
):
    """Merge the shards of `facemath project --shard K/N` into one result, as one unsharded run writes it.

    The shards must share the model, its version and the projection configuration, come from the same input
    list, and be all N of them with no image twice; the merged latents.npz lists the faces in input order."""

    check_new_dir(out, overwrite, reads=sources)  # --out holding the shards would delete them
    parts = load_shards(sources)
    merged = merge(parts)
    with atomic_dir(out) as tmp:
        written = write_merged(parts, merged, tmp)
    count = parts[0][1].shard["count"]
    typer.echo(
        f"merged {plural(count, 'shard')}, {plural(len(merged.names), 'face')}, into {out} ({', '.join(written)})"
    )
