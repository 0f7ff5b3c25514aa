"""`facemath data`: render labelled faces, inspect a face folder, draw a grid of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import check_new_dir, check_new_file, disk_space
from facemath_core.base.runtime import import_tensorflow_quietly, interruptible
from facemath_core.base.text import plural, shown
from facemath_core.data.folders import FaceFolder, load_folder_images, open_faces
from facemath_core.data.images import MAX_PIXELS, image_grid, save_png
from facemath_core.data.synth import parse_correlations, parse_frequencies, write_synthetic_folder
from facemath_core.data.tfrecords import pack_folder

app = typer.Typer(
    help="Labelled face data: render synthetic faces, inspect CelebA-format folders.", no_args_is_help=True
)


@app.command("synth")
def synth(
    count: Annotated[int, typer.Option("--count", "-n", help="How many faces to render.")] = 1000,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (CelebA layout).")] = Path("faces"),
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed renders the same faces.")] = 0,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 64,
    freq: Annotated[
        list[str] | None,
        typer.Option(
            "--freq",
            help="Attribute frequency, e.g. Smiling=0.3 (repeatable). Default 0.5; hair colours "
            "Black .25, Brown .25, Blond .2, Gray .15 (rest red).",
        ),
    ] = None,
    correlate: Annotated[
        list[str] | None,
        typer.Option("--correlate", help="Correlate two binary attributes, e.g. Smiling:Male=0.6 (repeatable)."),
    ] = None,
    held_out: Annotated[int, typer.Option("--held-out-percent", help="Last N% of faces form the held-out split.")] = 10,
    flat: Annotated[bool, typer.Option(help="Images beside the attribute file, not in img_align_celeba/.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing non-empty --out folder.")] = False,
):
    """Render faces with ground-truth attributes into a CelebA-format folder."""
    from rich.progress import Progress

    if not 0 <= held_out <= 100:
        raise typer.BadParameter(f"{held_out}: must lie in 0..100", param_hint="--held-out-percent")
    check_new_dir(out, overwrite)
    frequencies, correlations = parse_frequencies(freq), parse_correlations(correlate)
    with Progress() as progress:
        tasks = []

        def advance(n):
            if not tasks:  # the bar appears once rendering starts, not before a refused --count or --size
                tasks.append(progress.add_task(f"rendering {plural(count, 'face')}", total=count))
            progress.advance(tasks[0], n)

        write_synthetic_folder(out, count, seed, size, frequencies, correlations, held_out, progress=advance, flat=flat)
    kept = count * held_out // 100  # as write_synthetic_folder splits: the last held_out% are held out
    typer.echo(
        f"wrote {plural(count, 'face')} to {shown(out)}: {count - kept} for training, {kept} held out "
        f"(--held-out-percent)"
    )


@app.command("info")
def info(
    folder: Annotated[Path, typer.Argument(help="A face folder (CelebA layout or plain images).")],
    check: Annotated[bool, typer.Option(help="Decode every image and report all unreadable files.")] = True,
):
    """Show a face folder's size, split and attribute frequencies; check that every image decodes."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    faces = open_faces(folder)
    console = Console()
    held = int(faces.held_out.sum())
    console.print(
        f"{escape(shown(folder))}: {plural(len(faces.paths), 'image')} ({len(faces.paths) - held} train, "
        f"{held} held-out)",
        highlight=False,
    )
    if faces.attributes is not None:
        table = Table(show_edge=False)
        table.add_column("attribute")
        table.add_column("train", justify="right")
        table.add_column("held-out", justify="right")
        train, test = faces.split("train"), faces.split("held-out")
        for name in faces.attribute_names:
            table.add_row(
                name, *(f"{part.attribute(name).mean():.3f}" if part.paths else "-" for part in (train, test))
            )
        console.print(table)
    else:
        console.print("no attribute file (list_attr_celeba.txt): images only")
    if check:
        load_folder_images(faces, 32)
        console.print(f"all {len(faces.paths)} images decode" if len(faces.paths) > 1 else "the image decodes")


@app.command("grid")
def grid(
    folder: Annotated[Path, typer.Argument(help="A face folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("grid.png"),
    count: Annotated[int, typer.Option("--count", "-n", help="How many faces.")] = 64,
    size: Annotated[int, typer.Option(help="Side of each face in the grid.")] = 64,
    columns: Annotated[int, typer.Option(help="Faces per row.")] = 8,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
):
    """Draw the first COUNT faces of a folder as one picture, cropped and resized as training sees them."""

    for option, value in (("--count", count), ("--size", size), ("--columns", columns)):
        if value < 1:
            raise FacemathError(f"{option} {value}: must be at least 1")
    if size > 4096:
        raise FacemathError(f"--size {size}: at most 4096 pixels per face")
    rows = -(-count // columns)
    if (rows * (size + 2)) * (min(count, columns) * (size + 2)) > MAX_PIXELS:
        raise FacemathError(
            f"--count {count} --size {size} --columns {columns}: the grid would be over the {MAX_PIXELS:,} pixel "
            f"limit; draw fewer or smaller faces"
        )
    check_new_file(out, overwrite=overwrite, reads=[folder])
    faces = open_faces(folder)
    first = FaceFolder(faces.root, faces.paths[:count], faces.attribute_names, None, faces.held_out[:count])
    save_png(out, image_grid(load_folder_images(first, size), columns))
    typer.echo(f"wrote {shown(out)}")


@app.command("pack")
def pack(
    folder: Annotated[Path, typer.Argument(help="A face folder (CelebA layout or plain images).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of TFRecord shards to write.")] = Path("shards"),
    shard_size: Annotated[int, typer.Option(help="Faces per shard.")] = 10_000,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing non-empty --out folder.")] = False,
):
    """Pack a face folder into TFRecord shards (image bytes, attributes, split) that `facemath train --data` reads."""

    if shard_size < 1:
        raise FacemathError(f"--shard-size {shard_size}: must be at least 1")
    check_new_dir(out, overwrite, reads=[folder])  # --out FOLDER --overwrite would replace the faces by shards
    import_tensorflow_quietly()  # a light command: TensorFlow is imported here, without its start-up lines
    with interruptible(f"nothing was written ({shown(out)} is as it was)"), disk_space(out, f"the shards {out}"):
        index = pack_folder(folder, out, shard_size)
    typer.echo(f"wrote {plural(index['count'], 'face')} in {plural(len(index['shards']), 'shard')} to {shown(out)}")
