"""`facemath info`: which model source a command would use here, and each model's name, versions and model card
(how to reproduce it: data, training command, facemath version and commit, measured quality; models/cards.py)."""

from __future__ import annotations

import typer

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.version import __version__
from facemath_core.cli.options import (
    ModelSource,
    with_option_groups,
)
from facemath_core.models.layout import card_lines, describe_models
from facemath_core.models.source import resolve_models


@with_option_groups
def info_command(
    source: ModelSource = ModelSource(),
):
    """Show the model source in effect (--models, $FACEMATH_MODELS, ./exported_models or the installed models)
    and each model in it: name, versions and the model card of its newest version (data, training command,
    facemath version and commit, measured quality)."""

    source.check()
    if source.server:
        typer.echo(f"facemath {__version__}")
        _server_info(source)
        return
    resolved = resolve_models(source.models)
    typer.echo(f"facemath {__version__}")
    typer.echo(f"models: {resolved.path.resolve()} (from {resolved.origin})")
    infos = describe_models(resolved.path)
    if not infos:
        typer.echo("  no <name>/<version>/saved_model.pb model folders in it")
    width = max([len(i.name) for i in infos], default=0)
    for i in infos:
        versions = ", ".join(str(v) for v in i.versions)
        label_text = f"version {versions}" if len(i.versions) == 1 else f"versions {versions} (newest {i.newest})"
        typer.echo(f"  {i.name:{width}s}  {label_text}" + (f"  {i.error}" if i.error else ""))
        for line in i.card:
            typer.echo(f"      {line}")


def _server_info(source: ModelSource) -> None:

    backend = source.open()
    typer.echo(f"models: {backend.describe()} (from --server)")
    try:
        for model in (*S.MODEL_NAMES, *S.COMPOSITE_NAMES):
            if not backend.has(model):
                continue
            versions = ", ".join(str(v) for v in backend.available_versions(model))
            try:
                card, error = card_lines(backend.metadata(model)), ""
            except FacemathError as exc:
                card, error = [], f"  {exc}"
            typer.echo(f"  {model}  serving {backend.version(model)} (available {versions}){error}")
            for line in card:
                typer.echo(f"      {line}")
    finally:
        backend.close()
