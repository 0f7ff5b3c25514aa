"""`facemath studio`: the local web page (facemath_core.studio) on the chosen model source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.errors import FacemathError
from facemath_core.cli.options import ModelSource, note, with_option_groups
from facemath_core.host.manager import load_registry
from facemath_core.studio.engine import Engine

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@with_option_groups
def studio_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other machines can reach it only if you choose one of theirs.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8765,
    faces: Annotated[
        Path | None,
        typer.Option(help="A folder of faces to offer (its attribute file, if any, labels them for the sliders)."),
    ] = None,
    source: ModelSource = ModelSource(),
):
    """Open the face-math studio in your browser: project, slide attributes, do arithmetic, interpolate and
    complete faces interactively, on the same plugins and backends as the other commands."""
    import os
    import socket

    try:
        import uvicorn

        from facemath_core.studio.app import create_app
    except ImportError as exc:
        raise FacemathError(
            f"facemath studio needs the studio extra ({exc.name} is missing): pip install 'facemath[studio]'"
        ) from None

    source.check()
    registry = load_registry(ctx.obj["plugins"])
    engine = Engine(source.open(), registry, faces)
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise FacemathError(f"--host {host} --port {port}: cannot listen there ({reason})") from None
    bound = sock.getsockname()[1]
    if host not in LOOPBACK:
        note(f"listening on {host}: anyone who can reach this machine can use the studio")
    app = create_app(engine)  # before the address is printed: whoever reads it can connect at once
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"facemath studio at http://{shown}:{bound}/ ({engine.backend.describe()}); Ctrl-C stops it", err=False)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        app.state.store.close()  # also when the server fails to start: no temporary folder is left behind
