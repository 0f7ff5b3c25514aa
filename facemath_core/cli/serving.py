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
from facemath_core.base.files import atomic_file, check_new_file
from facemath_core.serving.backends.tfserving import (
    channel_credentials,
    check_key_pair,
    check_pem_certificates,
    read_pem_certificates,
    read_pem_key_pair,
)
from facemath_core.serving.deploy import deploy, resolve_replicas, roll_out
from facemath_core.serving.model_config import entries_for_folder, read_config
from facemath_core.serving.protos import (
    format_ssl_config,
    parse_batching_parameters,
    parse_monitoring_config,
    parse_ssl_config,
)


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
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="gRPC port, 1-65535 (0: any free port, printed at start).")
    ] = 8500,
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
            min=0,
            help="Re-read --model-config-file this often and reload it, as the real server does (0: read once).",
        ),
    ] = 0,
    rest_api_port: Annotated[
        int,
        typer.Option(
            "--rest-api-port", "--rest_api_port", min=0, max=65535, help="Accepted for compatibility; no REST API here."
        ),
    ] = 0,
    file_system_poll_wait_seconds: Annotated[
        int,
        typer.Option(
            "--file-system-poll-wait-seconds",
            "--file_system_poll_wait_seconds",
            min=0,
            help="How often a reload waiting for a new model's first version looks for it (versions load on reload).",
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
    grpc_channel_arguments: Annotated[
        str,
        typer.Option(
            "--grpc-channel-arguments",
            "--grpc_channel_arguments",
            help="gRPC server arguments, key=value,... (e.g. grpc.max_connection_age_ms=30000).",
        ),
    ] = "",
    enable_grpc_healthcheck_service: Annotated[
        bool,
        typer.Option(
            "--enable-grpc-healthcheck-service",
            "--enable_grpc_healthcheck_service",
            help="Serve the standard grpc.health.v1.Health service (Kubernetes grpc probes).",
        ),
    ] = False,
    ssl_config_file: Annotated[
        Path | None,
        typer.Option(
            "--ssl-config-file",
            "--ssl_config_file",
            help="TLS as tensorflow_model_server takes it: an SSLConfig text proto (server_key, server_cert, "
            "custom_ca, client_verify).",
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

    from facemath_core.serving.standin import (  # imports gRPC: only `serve` needs it
        ConfigPoller,
        ServingError,
        build_server,
        parse_channel_arguments,
    )

    if (models is None) == (model_config_file is None):
        raise typer.BadParameter("give --models DIR or --model-config-file FILE", param_hint="--models")
    try:
        channel_arguments = parse_channel_arguments(grpc_channel_arguments)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grpc_channel_arguments") from None
    max_batch_size = _batching_limit(enable_batching, batching_parameters_file)
    if monitoring_config_file is not None:
        _check_monitoring(monitoring_config_file)
    credentials = _server_credentials(tls_cert, tls_key, tls_client_ca, ssl_config_file)
    entries = entries_for_folder(models) if models else read_config(model_config_file)
    try:
        server, bound, store = build_server(
            entries,
            host,
            port,
            tensor_content=tensor_content,
            credentials=credentials,
            allow_version_labels_for_unavailable_models=allow_version_labels_for_unavailable_models,
            max_batch_size=max_batch_size,
            channel_arguments=channel_arguments,
            health_check=enable_grpc_healthcheck_service,
            file_system_poll_wait_seconds=file_system_poll_wait_seconds,
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
        poller = ConfigPoller(
            store, model_config_file, model_config_file_poll_wait_seconds, lambda line: typer.echo(line, err=True)
        )
        poller.start()
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


def _server_credentials(
    tls_cert: Path | None, tls_key: Path | None, tls_client_ca: Path | None, ssl_config_file: Path | None
):
    """Server TLS from --tls-cert/--tls-key[/--tls-client-ca] or from an SSLConfig file; every PEM is checked by
    OpenSSL first, so a wrong file is one line naming it (gRPC would only log several lines and fail to bind)."""
    import grpc

    if ssl_config_file is not None:
        if tls_cert or tls_key or tls_client_ca:
            raise typer.BadParameter(
                "give --ssl_config_file or --tls-cert/--tls-key, not both", param_hint="--tls-cert"
            )
        return _ssl_config_credentials(ssl_config_file)
    if not (tls_cert or tls_key or tls_client_ca):
        return None
    if not (tls_cert and tls_key):
        raise typer.BadParameter("TLS needs both --tls-cert and --tls-key", param_hint="--tls-cert")
    cert, key = read_pem_key_pair(tls_cert, tls_key, "--tls-cert", "--tls-key")
    client_ca = read_pem_certificates(tls_client_ca, "--tls-client-ca") if tls_client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca, require_client_auth=bool(client_ca))


def _ssl_config_credentials(path: Path):
    """BuildServerCredentials (server.cc:115-147 at tag 2.19.1, :117-149 at 9d981c5): the key and certificate,
    custom_ca as the roots that verify clients, client_verify to require and verify a client certificate."""
    import grpc

    try:
        config = parse_ssl_config(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise FacemathError(f"--ssl_config_file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise FacemathError(f"--ssl_config_file {path}: not UTF-8 text (byte {exc.start})") from None
    except Exception as exc:  # noqa: BLE001 - a text-format parse error, reported as one line
        reason = " ".join(str(exc).split())
        raise FacemathError(f"--ssl_config_file {path}: not an SSLConfig text proto ({reason})") from None
    name = f"--ssl_config_file {path}"
    if not config.server_cert or not config.server_key:
        raise FacemathError(f"{name}: server_cert and server_key must hold the PEM texts")
    cert, key = config.server_cert.encode(), config.server_key.encode()
    check_pem_certificates(cert, f"{name}: server_cert")
    check_key_pair(cert, key, f"{name}: server_cert", f"{name}: server_key")
    roots = None
    if config.custom_ca:
        roots = config.custom_ca.encode()
        check_pem_certificates(roots, f"{name}: custom_ca")
    if config.client_verify and roots is None:
        # The real server would verify client certificates against the system's default roots.
        raise FacemathError(f"{name}: client_verify needs custom_ca (the CA that signs client certificates)")
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=roots, require_client_auth=config.client_verify)


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
    reload: Annotated[
        list[str] | None,
        typer.Option(
            metavar="<replica>",
            help="A replica to roll out to: HOST:PORT (give it once per replica) or dns:///NAME:PORT (every address "
            "of a headless Service). The label moves only once every replica has the new versions AVAILABLE.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds every replica has to report the new versions AVAILABLE.")
    ] = 120.0,
    tls_ca: Annotated[Path | None, typer.Option(help="--reload over TLS: the server's CA.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Mutual TLS: client certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Mutual TLS: client private key (PEM).")] = None,
):
    """Copy exported model versions under a TF Serving model base path, write models.config, and optionally roll
    them out to every replica of a fleet: new versions first, the label only once all replicas have them."""

    if timeout <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--timeout")
    if reload:
        channel_credentials(tls_ca, tls_cert, tls_key, option="--reload")  # bad files fail before copying
        resolve_replicas(reload)  # and unknown names
    elif tls_ca or tls_cert or tls_key:
        raise typer.BadParameter("TLS options apply to --reload only", param_hint="--tls-ca")
    result = deploy(models, to, version, label, base_path, replace=replace, rollout=bool(reload))
    for path in result.copied:
        typer.echo(f"copied {path}")
    typer.echo(f"wrote {result.config_path}")
    if reload:
        roll_out(result, reload, timeout, tls_ca, tls_cert, tls_key, log=typer.echo)
        return
    for move in result.pending_labels:
        typer.echo(
            f"label {move}: not moved (TF Serving labels only a version that is AVAILABLE, and a replica that polls "
            f"models.config would be stranded); move it with --reload for every replica (HOST:PORT each, or "
            f"dns:///SERVICE:PORT): deploy moves it once all of them have the new version",
            err=True,
        )


def ssl_config_command(
    tls_cert: Annotated[Path, typer.Option(help="The server's certificate (PEM), its chain after it.")],
    tls_key: Annotated[Path, typer.Option(help="The server's private key (PEM, unencrypted).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The SSLConfig file to write (mode 0600).")],
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(help="Mutual TLS: the CA (PEM) that signs client certificates; clients must present one."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
):
    """Write the SSLConfig text proto that tensorflow_model_server reads with --ssl_config_file (and
    `facemath serve` too): the PEM texts escaped as text-format strings, checked first."""
    cert, key = read_pem_key_pair(tls_cert, tls_key, "--tls-cert", "--tls-key")
    client_ca = read_pem_certificates(tls_client_ca, "--tls-client-ca") if tls_client_ca else b""
    check_new_file(out, "--out", overwrite=overwrite, reads=[tls_cert, tls_key, *filter(None, [tls_client_ca])])
    text = format_ssl_config(key.decode("ascii"), cert.decode("ascii"), client_ca.decode("ascii"), bool(client_ca))
    with atomic_file(out, "w", permissions=0o600) as handle:
        handle.write(text)
    typer.echo(f"wrote {out} ({'mutual TLS: client certificates required' if client_ca else 'TLS'})")
