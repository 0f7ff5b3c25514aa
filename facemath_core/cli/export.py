"""`facemath export RUN`: write a training run's networks as TF Serving SavedModels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.files import disk_space
from facemath_core.base.runtime import interruptible
from facemath_core.base.text import shown
from facemath_core.models.export import export_run
from facemath_core.models.layout import existing_versions


def export_command(
    run: Annotated[Path, typer.Argument(help="A training run folder (from facemath train).")],
    to: Annotated[Path, typer.Option(help="Model base path: writes <to>/<model>/<version>/.")] = Path(
        "exported_models"
    ),
    version: Annotated[int | None, typer.Option(help="Version number (default: one above the newest).")] = None,
    prefix: Annotated[str, typer.Option(help="Name models <prefix>_<model> so several families coexist.")] = "",
):
    """Export the run's networks (GAN: generator + discriminator; VAE: vae_encoder + vae_decoder; oracle:
    attribute_oracle) with their signatures, metadata and warmup records."""

    # SIGTERM stops an export as Ctrl-C does: every version folder being built is removed on the way out.
    with interruptible(f"nothing was exported ({shown(to)} is as it was)"), disk_space(to, f"the export into {to}"):
        written = export_run(run, to, version, prefix)
    for path in written:
        # Latents record the version that made them, so older versions stay where they are: say what was added.
        older = [v for v in existing_versions(path.parent) if v != int(path.name)]
        beside = f" (added beside version {', '.join(map(str, older))})" if older else ""
        typer.echo(f"wrote {path}{beside}")
