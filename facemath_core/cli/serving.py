"""`facemath serve` (the development stand-in for tensorflow_model_server) and `facemath deploy`.

`serve` accepts tensorflow_model_server's own spelling of the flags the shipped manifests use
(`--model_config_file=...`, `--enable_batching`, ...), so serving/docker-compose.yml's command line runs
unchanged against the stand-in (tests/serving/test_deploy.py checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.errors import FacemathError
from facemath_core.serving.backends.tfserving import channel_credentials
from facemath_core.serving.deploy import deploy, reload_server
from facemath_core.serving.model_config import entries_for_folder, read_config
from facemath_core.serving.protos import parse_batching_parameters, parse_monitoring_config


def serve_command(
    models: Annotated[Path | None, typer.Option(help="Serve every <name>/<version>/ model in this folder.")] = None,
    model_config_file: Annotated[
        Path | None,
        typer.Option(
            "--model-config-file",
            "--model_config_file",
            help="Serve what this models.config lists.",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="gRPC port (0: any free port, printed at start).")] = 8500,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    tensor_content: Annotated[
        bool,
        typer.Option(
            "--tensor-content",
            "--enable_serialization_as_tensor_content",
            help="Answer with tensor_content instead of typed float_val fields.",
        ),
    ] = False,
    allow_version_labels_for_unavailable_models: Annotated[
        bool,
        typer.Option(
            "--allow-version-labels-for-unavailable-models",
            "--allow_version_labels_for_unavailable_models",
            help="Accept a label on a version not loaded yet (needed to start with a labelled models.config).",
        ),
    ] = False,
    enable_batching: Annotated[
        bool, typer.Option("--enable-batching", "--enable_batching", help="Apply the batching file's limits.")
    ] = False,
    batching_parameters_file: Annotated[
        Path | None,
        typer.Option("--batching-parameters-file", "--batching_parameters_file", help="BatchingParameters text proto."),
    ] = None,
    model_config_file_poll_wait_seconds: Annotated[
        int,
        typer.Option(
            "--model-config-file-poll-wait-seconds",
            "--model_config_file_poll_wait_seconds",
            help="Re-read --model-config-file this often and reload it when it changed (0: read once).",
        ),
    ] = 0,
    rest_api_port: Annotated[
        int, typer.Option("--rest-api-port", "--rest_api_port", help="Accepted for compatibility; no REST API here.")
    ] = 0,
    file_system_poll_wait_seconds: Annotated[
        int,
        typer.Option(
            "--file-system-poll-wait-seconds",
            "--file_system_poll_wait_seconds",
            help="Accepted for compatibility; the stand-in loads versions on (re)load only.",
        ),
    ] = 1,
    monitoring_config_file: Annotated[
        Path | None,
        typer.Option(
            "--monitoring-config-file",
            "--monitoring_config_file",
            help="Checked (MonitoringConfig text proto); the stand-in exports no metrics.",
        ),
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM) for TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM) for TLS.")] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(help="Mutual TLS: require a client certificate signed by this CA (PEM)."),
    ] = None,
):
    """Serve exported models over TF Serving's gRPC API. A DEVELOPMENT STAND-IN: production runs
    tensorflow_model_server (docs/deploy.md)."""
    import signal
    import threading

    from facemath_core.serving.standin import ServingError, build_server  # imports gRPC: only `serve` needs it

    if (models is None) == (model_config_file is None):
        raise typer.BadParameter("give --models DIR or --model-config-file FILE", param_hint="--models")
    max_batch_size = _batching_limit(enable_batching, batching_parameters_file)
    if monitoring_config_file is not None:
        _check_monitoring(monitoring_config_file)
    entries = entries_for_folder(models) if models else read_config(model_config_file)
    credentials = _server_credentials(tls_cert, tls_key, tls_client_ca)
    try:
        server, bound, store = build_server(
            entries,
            host,
            port,
            tensor_content=tensor_content,
            credentials=credentials,
            allow_version_labels_for_unavailable_models=allow_version_labels_for_unavailable_models,
            max_batch_size=max_batch_size,
        )
    except ServingError as exc:
        raise FacemathError(f"cannot start: {exc.code.name}: {exc.message}") from None
    except (OSError, RuntimeError) as exc:
        raise FacemathError(f"--port {port}: cannot listen on {host}:{port} ({exc})") from None
    served = ", ".join(f"{e.name} {store.versions(e.name)}" for e in entries)
    typer.echo(f"facemath stand-in server (development only) on {host}:{bound}: {served}", err=True)
    if rest_api_port:
        typer.echo(f"--rest_api_port {rest_api_port}: the stand-in has no REST API (gRPC only)", err=True)
    print(f"listening on {host}:{bound}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if model_config_file is not None and model_config_file_poll_wait_seconds > 0:
        threading.Thread(
            target=_poll_config, args=(store, model_config_file, model_config_file_poll_wait_seconds, stop), daemon=True
        ).start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop(grace=2).wait()


def _batching_limit(enable_batching: bool, parameters: Path | None) -> int | None:
    """The max_batch_size a request may have (None: no batching). Without a file TF Serving's queue default
    (input_batch_size_limit 1000, shared_batch_scheduler.h) applies."""

    if parameters is not None and not enable_batching:
        raise typer.BadParameter("needs --enable_batching", param_hint="--batching_parameters_file")
    if not enable_batching:
        return None
    if parameters is None:
        return 1000
    try:
        params = parse_batching_parameters(parameters.read_text())
    except OSError as exc:
        raise FacemathError(f"--batching_parameters_file {parameters}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - a text-format parse error, reported as one line
        raise FacemathError(f"--batching_parameters_file {parameters}: {' '.join(str(exc).split())}") from None
    sizes = list(params.allowed_batch_sizes)
    limit = params.max_batch_size.value if params.HasField("max_batch_size") else 1000
    if sizes and (sizes != sorted(sizes) or sizes[-1] != limit):  # batching_session.cc's two rules
        raise FacemathError(
            f"--batching_parameters_file {parameters}: allowed_batch_sizes must increase and end at max_batch_size"
        )
    return limit


def _check_monitoring(path: Path) -> None:

    try:
        parse_monitoring_config(path.read_text())
    except OSError as exc:
        raise FacemathError(f"--monitoring_config_file {path}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - a text-format parse error, reported as one line
        raise FacemathError(f"--monitoring_config_file {path}: {' '.join(str(exc).split())}") from None


def _server_credentials(tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None):
    import grpc

    if not (tls_cert or tls_key or tls_client_ca):
        return None
    if not (tls_cert and tls_key):
        raise typer.BadParameter("TLS needs both --tls-cert and --tls-key", param_hint="--tls-cert")
    try:
        pair = [(tls_key.read_bytes(), tls_cert.read_bytes())]
        client_ca = tls_client_ca.read_bytes() if tls_client_ca else None
    except OSError as exc:
        raise FacemathError(f"--tls-cert/--tls-key/--tls-client-ca: cannot read {exc.filename}") from None
    return grpc.ssl_server_credentials(pair, root_certificates=client_ca, require_client_auth=client_ca is not None)


def _poll_config(store, path: Path, every: int, stop) -> None:
    """--model_config_file_poll_wait_seconds: reload the file when it changes (a failed reload is logged and the
    models already loaded keep serving, as in the real server)."""
    from facemath_core.serving.standin import ServingError  # imports gRPC: only `serve` needs it

    last = path.read_bytes() if path.exists() else b""
    while not stop.wait(every):
        try:
            text = path.read_bytes()
            if text == last:
                continue
            last = text
            store.reload(read_config(path))
            typer.echo(f"reloaded {path}", err=True)
        except ServingError as exc:
            typer.echo(f"reload of {path} failed: {exc.code.name}: {exc.message}", err=True)
        except (FacemathError, OSError) as exc:
            typer.echo(f"reload of {path} failed: {exc}", err=True)


def deploy_command(
    to: Annotated[Path, typer.Option(help="The server's model base path (e.g. a mounted volume).")],
    models: Annotated[Path, typer.Option(help="Exported models to deploy.")] = Path("exported_models"),
    version: Annotated[int | None, typer.Option(help="Deploy this version of each model (default: newest).")] = None,
    label: Annotated[
        str | None, typer.Option(help="Point this version label (e.g. stable) at the deployed version.")
    ] = None,
    base_path: Annotated[
        str | None,
        typer.Option(help="The base path as the server sees it, if it differs (e.g. /models inside the container)."),
    ] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite a version already deployed with different content.")] = False,
    reload: Annotated[str | None, typer.Option(help="HOST:PORT of a running server to reload and wait for.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each reload to become AVAILABLE.")] = 120.0,
    tls_ca: Annotated[Path | None, typer.Option(help="--reload over TLS: the server's CA.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Mutual TLS: client certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Mutual TLS: client private key (PEM).")] = None,
):
    """Copy exported model versions under a TF Serving model base path, write models.config, and optionally
    make a running server reload it (two reloads when a label moves: TF Serving labels only AVAILABLE versions)."""

    if timeout <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--timeout")
    if reload:
        channel_credentials(tls_ca, tls_cert, tls_key, option="--reload")  # unreadable files fail before copying
    elif tls_ca or tls_cert or tls_key:
        raise typer.BadParameter("TLS options apply to --reload only", param_hint="--tls-ca")
    result = deploy(models, to, version, label, base_path, replace=replace)
    for path in result.copied:
        typer.echo(f"copied {path}")
    typer.echo(f"wrote {result.config_path}")
    if reload:
        steps = reload_server(reload, result, timeout, tls_ca, tls_cert, tls_key)
        what = "reloaded twice (versions, then labels)" if steps == 2 else "reloaded"
        typer.echo(f"{reload}: {what}; every deployed version AVAILABLE")
    for move in result.pending_labels:
        typer.echo(
            f"label {move}: not moved yet (TF Serving labels only AVAILABLE versions); once the new version is "
            f"AVAILABLE, run this deploy again to move it, or use --reload HOST:PORT to do both steps",
            err=True,
        )
