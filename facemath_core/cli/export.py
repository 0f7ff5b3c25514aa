"""`facemath export RUN`: write a training run's networks as TF Serving SavedModels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.files import disk_space
from facemath_core.base.runtime import interruptible
from facemath_core.base.text import shown
from facemath_core.cli.options import note
from facemath_core.host.manager import load_registry
from facemath_core.models.export import export_run
from facemath_core.models.layout import existing_versions
from facemath_core.models.runs import read_run
from facemath_core.projection.calibration import calibrate_export
from facemath_core.serving.backends import open_backend


def export_command(
    ctx: typer.Context,
    run: Annotated[Path, typer.Argument(help="A training run folder (from facemath train).")],
    to: Annotated[Path, typer.Option(help="Model base path: writes <to>/<model>/<version>/.")] = Path(
        "exported_models"
    ),
    version: Annotated[int | None, typer.Option(help="Version number (default: one above the newest).")] = None,
    prefix: Annotated[str, typer.Option(help="Name models <prefix>_<model> so several families coexist.")] = "",
    calibrate: Annotated[
        int,
        typer.Option(
            min=0,
            help="Held-out faces to measure each generator, decoder and encoder on, for its out-of-domain marks "
            "(0: none; a generator's are projected, 1000 steps each).",
        ),
    ] = 256,
):
    """Export the run's networks (GAN: generator + discriminator; VAE: vae_encoder + vae_decoder; VAE-GAN:
    vaegan_encoder + vaegan_decoder + vaegan_discriminator; GAN encoder: gan_encoder; oracle: attribute_oracle)
    with their signatures, metadata and warmup records."""

    # SIGTERM stops an export as Ctrl-C does: every version folder being built is removed on the way out.
    with interruptible(f"nothing was exported ({shown(to)} is as it was)"), disk_space(to, f"the export into {to}"):
        written = export_run(run, to, version, prefix)
    for path in written:
        # Latents record the version that made them, so older versions stay where they are: say what was added.
        older = [v for v in existing_versions(path.parent) if v != int(path.name)]
        beside = f" (added beside version {', '.join(map(str, older))})" if older else ""
        typer.echo(f"wrote {path}{beside}")
    # What the exports reconstruct of their own held-out faces: `project` and `encode` judge a face against it.
    registry = load_registry(ctx.obj["plugins"])
    record = read_run(run)
    with open_backend(to, None, manager=registry.manager, prefix=prefix) as backend:
        for line in calibrate_export(backend, registry, written, record.get("data"), calibrate, note):
            typer.echo(f"calibrated {line}")
