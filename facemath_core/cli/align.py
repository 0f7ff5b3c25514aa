"""`facemath align`: detect the faces of photos and align each to the model's landmark template; and the face
options (`--detector`, `--min-face`, `--max-faces`, `--template`) that `--align` on `project`, `complete` and
`encode`, and `edit`, share with it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir, check_new_dir
from facemath_core.cli.options import ModelSource, OverwriteOption, note, option_group, with_option_groups
from facemath_core.data.align import (
    DEFAULT_MAX_FACES,
    DEFAULT_MIN_FACE,
    AlignedFace,
    Aligner,
    Template,
    alignment_sheet,
    celeba_template,
    count_line,
    model_template,
)
from facemath_core.data.folders import collect_image_paths
from facemath_core.data.images import read_image, save_png, to_unit
from facemath_core.host.manager import load_registry
from facemath_core.projection.flags import domain_warnings, out_of_domain
from facemath_core.projection.run import JobInputs, display_names

FACES = "Faces in photos"  # the help panel of the face options

DetectorOption = Annotated[
    str, typer.Option(help="Face detector plugin (`facemath plugins --kind detector`).", rich_help_panel=FACES)
]
DetectorParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--detector-param", help="Detector parameter NAME.KEY=VALUE, e.g. mtcnn.threshold=0.9.", rich_help_panel=FACES
    ),
]
MinFaceOption = Annotated[
    int,
    typer.Option(
        "--min-face", min=1, help="Smallest face to align, in pixels (its box's longer side).", rich_help_panel=FACES
    ),
]
MaxFacesOption = Annotated[
    int,
    typer.Option(
        "--max-faces", min=1, help="Align at most this many faces per photo, the largest.", rich_help_panel=FACES
    ),
]
TemplateOption = Annotated[
    str,
    typer.Option(
        help="Landmark template: model (the one the model's metadata records: its training faces' framing) or "
        "celeba (CelebA's standard aligned positions, for a model trained on aligned CelebA elsewhere).",
        rich_help_panel=FACES,
    ),
]
AlignOption = Annotated[
    bool,
    typer.Option(
        "--align",
        help="Treat the images as photos: detect each face, align it to the model's landmark template and work on "
        "the crops (PHOTO_1.png, PHOTO_2.png, ...).",
        rich_help_panel=FACES,
    ),
]


@option_group
class FaceOptions:
    """How faces are found in photos and aligned."""

    detector: DetectorOption = "mtcnn"
    detector_param: DetectorParamOption = None
    min_face: MinFaceOption = DEFAULT_MIN_FACE
    max_faces: MaxFacesOption = DEFAULT_MAX_FACES
    template: TemplateOption = "model"

    def template_for(self, backend, model: str = S.GENERATOR, size: int | None = None) -> Template:
        """The template the faces are aligned to, at `size` (default: the model's input size)."""
        if self.template == "celeba":
            if size is None and backend is not None:
                size = backend.metadata(model)["image_size"]
            return celeba_template(size or 64)
        if self.template != "model":
            raise typer.BadParameter(f"{self.template!r}: choose model or celeba", param_hint="--template")
        meta = backend.metadata(model)
        template = model_template(meta, model, size or meta["image_size"])
        if template is None:
            raise FacemathError(
                f"the {model} model (version {backend.version(model)}) records no landmark template (it was exported "
                f"before facemath recorded one); align to CelebA's positions with --template celeba"
            )
        return template

    def aligner(self, registry, template: Template, warn=note) -> Aligner:
        return Aligner(
            registry,
            template,
            detector=self.detector,
            params=self.detector_param,
            min_face=self.min_face,
            max_faces=self.max_faces,
            note=warn,
        )


def photo_paths(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """The photos the arguments name (files, or folders of images) and their unique display names."""
    paths = collect_image_paths(arguments)
    return paths, display_names(paths)


def aligned_inputs(aligner: Aligner, arguments: list[str]) -> tuple[JobInputs, list[AlignedFace]]:
    """The faces of the photos as a projection's inputs: one crop per face, named PHOTO_1.png ... (largest first),
    each recording its photo, face index, box, landmarks and transform (`JobInputs.faces`)."""
    paths, names = photo_paths(arguments)
    faces = aligner.align_files(paths, names)
    described = aligner.describe()
    records = [{**face.record(), **described} for face in faces]
    inputs = JobInputs(
        names=[f.name for f in faces],
        paths=[f.photo for f in faces],
        images=to_unit(_stack([f.crop for f in faces], aligner.size)),
        resized=[],
        faces=records,
    )
    return inputs, faces


def _stack(crops, size):
    return np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)


@with_option_groups
def align_command(
    ctx: typer.Context,
    photos: Annotated[list[str], typer.Argument(help="Photos, or folders of photos.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the crops, faces.json and the contact sheet.")],
    size: Annotated[
        int | None, typer.Option(min=8, max=1024, help="Crop size in pixels (default: the model's input size).")
    ] = None,
    overwrite: OverwriteOption = False,
    faces: FaceOptions = FaceOptions(),
    source: ModelSource = ModelSource(),
):
    """Find every face in the photos and align each to the model's landmark template: one crop per face
    (PHOTO_1.png, PHOTO_2.png, ... largest first), faces.json (photo, box, landmarks, score, transform) and a
    contact sheet."""
    check_new_dir(out, overwrite, reads=photos)
    registry = load_registry(ctx.obj["plugins"])
    backend = None if faces.template == "celeba" and size is not None else source.open()
    template = faces.template_for(backend, S.GENERATOR, size)
    aligner = faces.aligner(registry, template)
    paths, names = photo_paths(photos)
    found = aligner.align_files(paths, names)
    with atomic_dir(out) as tmp:
        for face in found:
            save_png(tmp / face.name, face.crop)
        records = {
            "faces": [face.record() for face in found],
            **aligner.describe(),
            "photos": [str(p) for p in paths],
        }
        (tmp / "faces.json").write_text(json.dumps(records, indent=2) + "\n")
        photos_read = [(str(p), read_image(p)) for p in paths]
        save_png(tmp / "contact_sheet.png", alignment_sheet(photos_read, found))
    typer.echo(f"aligned {count_line(found)} into {out} ({template.size}x{template.size} crops)")


@dataclass
class DomainMarks:
    """Out-of-domain marks of an encoding (`facemath encode`), recorded in its latents and said once it is written:
    a warning per marked face, then one summary line."""

    names: list[str]
    psnr: np.ndarray
    marks: np.ndarray | None
    metadata: dict
    model: str
    version: int

    @property
    def rows(self) -> list[bool] | None:
        return None if self.marks is None else [bool(m) for m in self.marks]

    def caption(self, i: int) -> str:
        return "   OUT OF DOMAIN" if self.marks is not None and self.marks[i] else ""

    def report(self) -> None:
        for line in domain_warnings(self.names, self.psnr, self.marks, self.metadata, self.model, self.version):
            typer.echo(f"warning: {line}", err=True)
        if len(self.psnr):
            counted = (
                ""
                if self.marks is None
                else (
                    f"; {int(np.sum(self.marks))} of {len(self.psnr)} out of the model's domain (PSNR below its 1st "
                    f"percentile on held-out faces)"
                )
            )
            typer.echo(
                f"PSNR of the round trip mean {self.psnr.mean():.1f} dB, worst {self.psnr.min():.1f} dB{counted}"
            )


def mark_domain(latents, inputs: JobInputs, psnr, metadata: dict, model: str) -> DomainMarks:
    """Record in `latents` each face's round-trip PSNR, its out-of-domain mark (against `model`'s held-out PSNR
    quantiles) and, for aligned inputs, its photo and face (`config["faces"]`)."""
    latents.psnr = np.asarray(psnr, np.float32)
    latents.out_of_domain = out_of_domain(psnr, metadata)
    if inputs.faces:
        latents.config["faces"] = inputs.faces
    version = latents.models.get(model, 0)
    return DomainMarks(list(latents.names), np.asarray(psnr), latents.out_of_domain, metadata, model, version)
