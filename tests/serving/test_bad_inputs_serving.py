"""Bad inputs and races of the serving commands (issue 30: serve, project --server over TLS, deploy, export into a
shared model base path): each is one `error:` line and nothing else on stderr, or the documented outcome.

The TLS cases run in a child process too: gRPC's C core writes its own log lines to file descriptor 2, which only a
real process shows."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from facemath_core.base import signatures as S
from facemath_core.base.files import folder_lock
from facemath_core.serving.model_config import entries_for_folder, read_config
from facemath_core.serving.standin import build_server

from ..support import assert_one_error, facemath_process, run_facemath, snapshot

FACE = Path(__file__).parents[2] / "examples" / "faces" / "000001.png"


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pems(tmp_path_factory):
    """A CA and a localhost certificate it signed; another CA; a key of another pair; damaged and encrypted files."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pems")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.cnf", "-out", "server.pem", cwd=d)  # fmt: skip
    _openssl("rsa", "-in", "server.key", "-aes256", "-passout", "pass:secret", "-out", "encrypted.key", cwd=d)
    (d / "garbage.pem").write_text("this is not a certificate\n")
    body = "-----BEGIN CERTIFICATE-----\nTUlJQ2RqQ0NBZDZnQXdJQkFnSVVCQ0RF\n-----END CERTIFICATE-----\n"
    (d / "damaged.pem").write_text(body)
    return d


SERVE_TLS = [
    (["--tls-cert", "garbage.pem", "--tls-key", "server.key"], "--tls-cert {d}/garbage.pem: not a PEM certificate"),
    (["--tls-cert", "damaged.pem", "--tls-key", "server.key"], "--tls-cert {d}/damaged.pem: not a PEM certificate ("),
    (["--tls-cert", "server.key", "--tls-key", "server.pem"], "--tls-cert {d}/server.key: not a PEM certificate"),
    (["--tls-cert", "server.pem", "--tls-key", "garbage.pem"], "--tls-key {d}/garbage.pem: not a PEM private key"),
    (["--tls-cert", "server.pem", "--tls-key", "ca.key"],
     "--tls-key {d}/ca.key: is not the private key of --tls-cert {d}/server.pem (key values mismatch)"),
    (["--tls-cert", "server.pem", "--tls-key", "encrypted.key"],
     "--tls-key {d}/encrypted.key: the private key is encrypted"),
    (["--tls-cert", "server.pem", "--tls-key", "server.key", "--tls-client-ca", "garbage.pem"],
     "--tls-client-ca {d}/garbage.pem: not a PEM certificate"),
    (["--tls-cert", "missing.pem", "--tls-key", "server.key"], "--tls-cert: cannot read {d}/missing.pem"),
]  # fmt: skip


def _serve_args(tiny_export, pems, args):
    return [
        "serve",
        "--models",
        tiny_export,
        "--port",
        "0",
        *[str(pems / a) if a.endswith((".pem", ".key")) else a for a in args],
    ]


@pytest.mark.parametrize("args, message", SERVE_TLS, ids=[f"{a[1]}-{a[3]}" for a, _ in SERVE_TLS])
def test_serve_names_the_tls_file_that_is_wrong(cli, tiny_export, pems, args, message):
    assert_one_error(cli(*_serve_args(tiny_export, pems, args)), 1, message.format(d=pems))


@pytest.mark.slow
@pytest.mark.parametrize("case", [0, 4])
def test_serve_tls_errors_print_no_grpc_log_lines(tiny_export, pems, case):
    """The same in a real process: before, a mismatched pair was "cannot listen on 127.0.0.1:0" after gRPC's own
    log lines; now it is the one line, and nothing else reaches the terminal."""
    args, message = SERVE_TLS[case]
    assert_one_error(run_facemath(*_serve_args(tiny_export, pems, args), timeout=120), 1, message.format(d=pems))


def _ssl_config(tmp_path, text: str) -> Path:
    path = tmp_path / "ssl_config.txt"
    path.write_text(text)
    return path


def test_serve_ssl_config_file_errors(cli, tiny_export, pems, tmp_path):
    from facemath_core.serving.protos import format_ssl_config

    serve = ["serve", "--models", tiny_export, "--port", "0", "--ssl_config_file"]
    path = _ssl_config(tmp_path, "server_key: 'x'\nserver_certificate: 'y'\n")
    assert_one_error(cli(*serve, path), 1, f"--ssl_config_file {path}: not an SSLConfig text proto")
    path = _ssl_config(tmp_path, "client_verify: true\n")
    assert_one_error(cli(*serve, path), 1, "server_cert and server_key must hold the PEM texts")
    key, cert, other = ((pems / n).read_text() for n in ("server.key", "server.pem", "ca.key"))
    path = _ssl_config(tmp_path, format_ssl_config(other, cert))
    assert_one_error(cli(*serve, path), 1, f"--ssl_config_file {path}: server_key: is not the private key of")
    path = _ssl_config(tmp_path, format_ssl_config(key, cert, client_verify=True))
    assert_one_error(cli(*serve, path), 1, "client_verify needs custom_ca")
    path = _ssl_config(tmp_path, format_ssl_config(key, cert, custom_ca="not a pem", client_verify=True))
    assert_one_error(cli(*serve, path), 1, f"--ssl_config_file {path}: custom_ca: not a PEM certificate")
    assert_one_error(cli(*serve, path, "--tls-cert", pems / "server.pem"), 2, "not both")


@pytest.mark.parametrize(
    "port, code, fragment",
    [("70000", 2, "--port"), ("-1", 2, "--port"), ("65536", 2, "--port")],
)
def test_serve_refuses_ports_outside_1_to_65535(cli, tiny_export, port, code, fragment):
    assert_one_error(cli("serve", "--models", tiny_export, "--port", port), code, fragment)


def test_serve_refuses_a_malformed_channel_argument(cli, tiny_export):
    assert_one_error(cli("serve", "--models", tiny_export, "--grpc_channel_arguments", "grpc.x"), 2, "not key=value")


# --- project --server over TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tiny_export, pems):
    credentials = grpc.ssl_server_credentials(
        [((pems / "server.key").read_bytes(), (pems / "server.pem").read_bytes())]
    )
    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0, credentials=credentials)
    yield f"localhost:{port}"
    server.stop(0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "ca, fragment",
    [
        ("other-ca.pem", "the server's certificate is not signed by the CA of --tls-ca (CERTIFICATE_VERIFY_FAILED)"),
        ("garbage.pem", "--tls-ca {d}/garbage.pem: not a PEM certificate"),
        ("damaged.pem", "--tls-ca {d}/damaged.pem: not a PEM certificate ("),
    ],
)
def test_project_over_tls_with_the_wrong_ca_is_one_line(tls_server, pems, tmp_path, ca, fragment):
    """A real process, so that gRPC's own log lines would show (before: 1 error line and 6 to 8 of gRPC's); a
    failed handshake is not retried (it fails the same way every time)."""
    started = time.monotonic()
    result = run_facemath("project", FACE, "--server", tls_server, "--tls-ca", pems / ca, "--out", tmp_path / "out",
                          "--timeout", "10", timeout=180)  # fmt: skip
    assert_one_error(result, 1, fragment.format(d=pems))
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - started < 60  # no 6 retries with backoff


def test_the_tls_server_works_with_the_right_ca(tls_server, pems):
    """The control: the same server and client with the CA that signed the server's certificate."""
    from facemath_core.serving.backends.tfserving import TFServingBackend

    assert TFServingBackend(tls_server, tls_ca=str(pems / "ca.pem")).version(S.GENERATOR) == 1


# --- deploy ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def source(tiny_export, tmp_path):
    root = tmp_path / "exported"
    shutil.copytree(tiny_export, root)
    return root


def test_deploy_refuses_a_version_that_cannot_be_served(cli, source, tmp_path):
    """A version whose variables/ is missing loads nowhere (the TF1 loader the server uses): refused before any
    copy, as `serve` would refuse it."""
    shutil.rmtree(source / S.DISCRIMINATOR / "1" / "variables")
    target = tmp_path / "models"
    line = assert_one_error(cli("deploy", "--models", source, "--to", target), 1, f"--models {source}: discriminator/1")
    assert "cannot be served" in line
    assert not target.exists()


def test_deploy_refuses_a_damaged_graph(cli, source, tmp_path):
    (source / S.GENERATOR / "1" / "saved_model.pb").write_bytes(b"\x00not a SavedModel")
    target = tmp_path / "models"
    assert_one_error(cli("deploy", "--models", source, "--to", target), 1, "generator/1 cannot be served")
    assert not target.exists()


def _wait_running(process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)


@pytest.mark.slow
def test_deploy_waits_for_another_writer_and_keeps_its_models(source, tmp_path):
    """Two deploys into one --to: while another writer holds the folder, deploy waits; it then reads the
    models.config that writer left, so neither model list is lost (before: 1 of 4 concurrent runs lost one)."""
    base = tmp_path / "models"
    base.mkdir()
    with folder_lock(base, wait=5):
        process = facemath_process("deploy", "--models", source, "--to", base, "--label", "stable")
        _wait_running(process, 8)
        assert not (base / "models.config").exists() and not (base / S.GENERATOR).exists()
        (base / "models.config").write_text(  # what the other writer published meanwhile
            'model_config_list { config { name: "other_team" base_path: "/x" model_platform: "tensorflow" } }\n'
        )
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    names = [e.name for e in read_config(base / "models.config")]
    assert names[0] == "other_team" and set(S.MODEL_NAMES) <= set(names)


@pytest.mark.slow
def test_export_waits_for_another_writer_and_takes_the_next_version(tiny_runs, tiny_export, tmp_path):
    """Two exports into one --to: the second waits while the first holds the folder, then picks the version after
    the one the first published instead of replacing it."""
    base = tmp_path / "models"
    base.mkdir()
    with folder_lock(base, wait=5):
        process = facemath_process("export", tiny_runs["vae"], "--to", base)
        _wait_running(process, 8)
        for name in (S.VAE_ENCODER, S.VAE_DECODER):  # what the first export published meanwhile
            shutil.copytree(tiny_export / name / "1", base / name / "1")
        before = {name: snapshot(base / name / "1") for name in (S.VAE_ENCODER, S.VAE_DECODER)}
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert {name: snapshot(base / name / "1") for name in before} == before  # version 1 untouched
    for name in (S.VAE_ENCODER, S.VAE_DECODER):
        assert (base / name / "2" / "saved_model.pb").exists()
    assert f"{base}/{S.VAE_DECODER}/2" in stdout
