"""`facemath serve` (the development stand-in for tensorflow_model_server) and `facemath deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve_command(
    models: Annotated[Path | None, typer.Option(help="Serve every <name>/<version>/ model in this folder.")] = None,
    model_config_file: Annotated[Path | None, typer.Option(help="Serve what this models.config lists.")] = None,
    port: Annotated[int, typer.Option(help="gRPC port (0: any free port, printed at start).")] = 8500,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    tensor_content: Annotated[
        bool, typer.Option(help="Answer with tensor_content, like --enable_serialization_as_tensor_content.")
    ] = False,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM) for TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM) for TLS.")] = None,
):
    """Serve exported models over TF Serving's gRPC API. A DEVELOPMENT STAND-IN: production runs
    tensorflow_model_server (docs/deploy.md)."""
    import signal
    import threading

    import grpc

    from facemath_core.errors import FacemathError
    from facemath_core.model_config import entries_for_folder, read_config
    from facemath_core.standin_server import ServingError, build_server

    if (models is None) == (model_config_file is None):
        raise typer.BadParameter("give --models DIR or --model-config-file FILE", param_hint="--models")
    entries = entries_for_folder(models) if models else read_config(model_config_file)
    credentials = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise typer.BadParameter("TLS needs both --tls-cert and --tls-key", param_hint="--tls-cert")
        credentials = grpc.ssl_server_credentials([(tls_key.read_bytes(), tls_cert.read_bytes())])
    try:
        server, bound, store = build_server(entries, host, port, tensor_content=tensor_content, credentials=credentials)
    except ServingError as exc:
        raise FacemathError(exc.message) from None
    except (OSError, RuntimeError) as exc:
        raise FacemathError(f"--port {port}: cannot listen on {host}:{port} ({exc})") from None
    served = ", ".join(f"{e.name} {store.versions(e.name)}" for e in entries)
    typer.echo(f"facemath stand-in server (development only) on {host}:{bound}: {served}", err=True)
    print(f"listening on {host}:{bound}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop(grace=2).wait()


def deploy_command(
    models: Annotated[Path, typer.Option(help="Exported models to deploy.")] = Path("exported_models"),
    to: Annotated[Path, typer.Option(help="The server's model base path (e.g. a mounted volume).")] = Path("/models"),
    version: Annotated[int | None, typer.Option(help="Deploy this version of each model (default: newest).")] = None,
    label: Annotated[
        str | None, typer.Option(help="Point this version label (e.g. stable) at the deployed version.")
    ] = None,
    base_path: Annotated[
        str | None,
        typer.Option(help="The base path as the server sees it, if it differs (e.g. /models inside the container)."),
    ] = None,
    reload: Annotated[str | None, typer.Option(help="HOST:PORT of a running server to reload and wait for.")] = None,
):
    """Copy exported model versions under a TF Serving model base path, write models.config, and optionally
    make a running server reload it."""
    from facemath_core.deploy import deploy, reload_server

    copied, config = deploy(models, to, version, label, base_path)
    for path in copied:
        typer.echo(f"copied {path}")
    typer.echo(f"wrote {config}")
    if reload:
        reload_server(reload, config)
        typer.echo(f"{reload}: reloaded, every model AVAILABLE")
