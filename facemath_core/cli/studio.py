"""`facemath studio`: the local web page (facemath_core.studio) on the chosen model source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.cli.options import ModelSource, note, with_option_groups
from facemath_core.host.manager import load_registry
from facemath_core.studio.server import serve


@with_option_groups
def studio_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other machines can reach it only if you choose one of theirs.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8765,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Another name the studio answers to (repeatable): a DNS name of this machine or its LAN address. "
            "It answers to 127.0.0.1, localhost, [::1] and --host anyway; any other Host is refused (DNS rebinding)."
        ),
    ] = None,
    token: Annotated[
        bool,
        typer.Option(
            "--token",
            help="Require the per-start access token printed in the address, also on loopback (on a machine shared "
            "with other users). Always required when --host is not loopback.",
        ),
    ] = False,
    faces: Annotated[
        Path | None,
        typer.Option(help="A folder of faces to offer (its attribute file, if any, labels them for the sliders)."),
    ] = None,
    source: ModelSource = ModelSource(),
):
    """Open the face-math studio in your browser: project, slide attributes, do arithmetic, interpolate and
    complete faces interactively, on the same plugins and backends as the other commands."""
    source.check()
    serve(
        source.open(),
        load_registry(ctx.obj["plugins"]),
        faces,
        host,
        port,
        say=typer.echo,
        note=note,
        allow_hosts=tuple(allow_host or ()),
        token=token,
    )
