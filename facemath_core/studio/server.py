"""Starting the studio: listen, print the address, serve until Ctrl-C, clean up. The one thing the CLI's
`facemath studio` command calls (the two front ends stay independent otherwise)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

from facemath_core.base.errors import FacemathError
from facemath_core.host.backend import Backend
from facemath_core.studio.access import WILDCARD, Access, is_loopback
from facemath_core.studio.engine import Engine


def serve(
    backend: Backend,
    registry,
    faces: Path | None,
    host: str,
    port: int,
    say: Callable[[str], None],
    note: Callable[[str], None],
    allow_hosts: tuple[str, ...] = (),
    token: bool = False,
) -> None:
    """Serve the studio on host:port (0: any free port) until interrupted; `say` prints the address, `note` a
    warning. `allow_hosts`: more names the studio answers to; `token`: require the per-start token on loopback too
    (it is always required on another address)."""
    try:
        import uvicorn  # uvicorn and starlette are the `studio` extra: a CLI-only install works without them

        from facemath_core.studio.app import create_app  # Starlette: the studio extra
    except ImportError as exc:
        raise FacemathError(
            f"facemath studio needs the studio extra ({exc.name} is missing): pip install 'facemath[studio]'"
        ) from None

    engine = Engine(backend, registry, faces)
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise FacemathError(f"--host {host} --port {port}: cannot listen there ({reason})") from None
    access = Access.for_address(host, sock.getsockname()[1], allow_hosts, token)
    if not is_loopback(host):
        note(f"listening on {host}: anyone who can reach this machine and has the address below can use the studio")
    app = create_app(engine, access=access)  # before the address is printed: whoever reads it can connect at once
    shown = socket.gethostname() if host in WILDCARD else host  # a wildcard address is no address to open
    say(f"facemath studio at {access.url(shown)} ({engine.backend.describe()}); Ctrl-C stops it")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        app.state.store.close()  # also when the server fails to start: no temporary folder is left behind
