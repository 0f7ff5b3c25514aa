"""facemath deploy, and the deployment files in serving/: parsed with TF Serving's own message types, their
server flags checked against tensorflow_model_server's flag list (tests/serving/tfserving_reference.py), and run
against the stand-in, which follows the real server's start-up and label rules."""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.serving.deploy import deploy, reload_server
from facemath_core.serving.model_config import parse_config, read_config
from facemath_core.serving.protos import parse_batching_parameters, parse_monitoring_config

from .tfserving_reference import MAIN_CC_FLAGS

SERVING = Path(__file__).parents[2] / "serving"
KUBERNETES = SERVING / "kubernetes"


def _k8s(name):
    return yaml.safe_load((KUBERNETES / name).read_text())


def _flags(args):
    return [a[2:].split("=", 1)[0] for a in args]


# --- the shipped files ----------------------------------------------------------------------------------------


def test_models_config_lists_every_model():
    entries = parse_config((SERVING / "models.config").read_text())
    assert sorted(e.name for e in entries) == sorted(S.MODEL_NAMES + S.COMPOSITE_NAMES)
    assert all(e.base_path == f"/models/{e.name}" and e.policy == "latest" for e in entries)


def test_batching_parameters_are_valid():
    params = parse_batching_parameters((SERVING / "batching_parameters.txt").read_text())
    sizes = list(params.allowed_batch_sizes)
    assert sizes == sorted(sizes) and sizes[-1] == params.max_batch_size.value  # TF Serving's two rules
    assert params.num_batch_threads.value >= 1
    configmap = _k8s("configmap.yaml")
    assert parse_batching_parameters(configmap["data"]["batching_parameters.txt"]) == params
    assert parse_monitoring_config(configmap["data"]["monitoring.config"]) == parse_monitoring_config(
        (SERVING / "monitoring.config").read_text()
    )


def test_monitoring_config():
    config = parse_monitoring_config((SERVING / "monitoring.config").read_text())
    assert config.prometheus_config.enable and config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_server_flags_are_tensorflow_model_servers_own():
    from facemath_core.serving.standin import parse_channel_arguments

    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())["services"]["tfserving"]
    container = _k8s("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    for args in (compose["command"], container["args"]):
        assert all(a.startswith("--") for a in args)
        unknown = [f for f in _flags(args) if f not in MAIN_CC_FLAGS]
        assert not unknown, f"not flags of tensorflow_model_server (main.cc): {unknown}"
        # Labelled configs start only with this flag: labels are assigned before models load.
        assert "allow_version_labels_for_unavailable_models" in _flags(args)
        assert "--model_config_file=/models/models.config" in args
        assert "--batching_parameters_file=/config/batching_parameters.txt" in args
        # gRPC health for the probes; connections recycled so that clients re-resolve the headless Service.
        assert "--enable_grpc_healthcheck_service" in args
        channel = next(a.split("=", 1)[1] for a in args if a.startswith("--grpc_channel_arguments="))
        options = dict(parse_channel_arguments(channel))  # as server.cc parses it: ints stay ints
        assert 1000 <= options["grpc.max_connection_age_ms"] <= 300_000
        assert 0 < options["grpc.max_connection_age_grace_ms"] <= options["grpc.max_connection_age_ms"]
    assert compose["command"] == container["args"]  # one server configuration, two launchers
    assert compose["entrypoint"] == container["command"] == ["tensorflow_model_server"]


def test_health_checks_cover_every_served_model():
    served = sorted(e.name for e in parse_config((SERVING / "models.config").read_text()))
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())["services"]["tfserving"]
    container = _k8s("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    for script in (compose["healthcheck"]["test"][-1], container["readinessProbe"]["exec"]["command"][-1]):
        loop = script.split(";")[0]
        assert loop.startswith("for m in ") and sorted(loop.split(" in ")[1].split()) == served
        assert "/v1/models/%s" in script and "AVAILABLE" in script


def test_kubernetes_objects():
    deployment = _k8s("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] >= 2
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 120
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    for probe in ("startupProbe", "livenessProbe"):  # the standard gRPC health check (Kubernetes 1.27+)
        assert container[probe]["grpc"] == {"port": grpc_port}, probe
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    pvc = _k8s("pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
    volume = next(v for v in pod["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"] == {"claimName": pvc["metadata"]["name"], "readOnly": True}
    hpa = _k8s("hpa.yaml")
    assert hpa["kind"] == "HorizontalPodAutoscaler" and hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    pdb = _k8s("pdb.yaml")
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    service = _k8s("service.yaml")
    assert service["spec"]["clusterIP"] == "None"  # headless: client-side round robin over the pods
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def _compose_args(config: Path, port_file: str = "--port=0") -> list[str]:
    """The compose command line, pointed at a local config and serving/ instead of the container's mounts."""
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())["services"]["tfserving"]
    args = []
    for arg in compose["command"]:
        arg = arg.replace("/models/models.config", str(config)).replace("/config/", f"{SERVING}/")
        args.append(port_file if arg.startswith("--port=") else arg)
    return args


@pytest.mark.slow
def test_the_compose_command_starts_the_stand_in_with_a_labelled_deploy(tiny_export, tmp_path):
    """A labelled deploy + the shipped server flags start cleanly; without the label flag the server refuses to
    start, as tensorflow_model_server does (tfserving_reference.py: label-at-startup)."""
    from facemath_core.serving.backends.tfserving import TFServingBackend
    from facemath_core.serving.standin import start_subprocess

    result = deploy(tiny_export, tmp_path / "models", label="stable")
    args = _compose_args(result.config_path)
    process, address = start_subprocess(args=args)
    try:
        backend = TFServingBackend(address, label="stable")
        assert backend.generate(np.zeros((2, 8), np.float32)).shape == (2, 32, 32, 3)
    finally:
        process.terminate()
        process.wait()
    without = [a for a in args if "allow_version_labels" not in a]
    with pytest.raises(RuntimeError, match="not currently available for inference"):
        start_subprocess(args=without)


# --- deploy -------------------------------------------------------------------------------------------------


@pytest.fixture
def source(tiny_export, tmp_path):
    """A private copy of the tiny export (tests change it)."""
    root = tmp_path / "exported"
    shutil.copytree(tiny_export, root)
    return root


def _snapshot(root: Path) -> dict:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.is_dir() or p.read_bytes()) for p in sorted(root.rglob("*"))}


def test_deploy_copies_versions_and_writes_a_config(source, tmp_path):
    base = tmp_path / "models"
    result = deploy(source, base, label="stable")
    assert sorted(p.parent.name for p in result.copied) == sorted(S.MODEL_NAMES + S.COMPOSITE_NAMES)
    entries = {e.name: e for e in read_config(result.config_path)}
    assert entries["generator"].versions == (1,) and entries["generator"].labels == {"stable": 1}
    assert Path(entries["generator"].base_path) == (base / "generator").resolve()
    assert (base / "generator" / "1" / "saved_model.pb").exists()
    assert not [p for p in base.rglob(".*")]  # no temporaries left
    # A second deploy of the same content changes nothing on disk; the label survives.
    before = _snapshot(base)
    assert deploy(source, base).copied == []
    assert _snapshot(base) == before


def test_deploy_base_path_as_the_server_sees_it(source, tmp_path):
    result = deploy(source, tmp_path / "m", base_path_in_server="/models")
    names = S.MODEL_NAMES + S.COMPOSITE_NAMES
    assert {e.base_path for e in read_config(result.config_path)} == {f"/models/{n}" for n in names}


FOREIGN = """
model_config_list {
  config {
    name: "other_team"
    base_path: "s3://bucket/other"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 3 } }
    version_labels { key: "canary" value: 9 }
    logging_config { sampling_config { sampling_rate: 0.25 } }
  }
  config {
    name: "generator"
    base_path: "/old/generator"
    model_platform: "tensorflow"
    version_labels { key: "legacy" value: 1 }
    logging_config { sampling_config { sampling_rate: 0.5 } }
  }
}
"""


def test_deploy_round_trips_entries_it_does_not_own(source, tmp_path):
    base = tmp_path / "models"
    base.mkdir()
    (base / "models.config").write_text(FOREIGN)
    original = text_format.Parse(FOREIGN, model_server_config_pb2.ModelServerConfig())
    result = deploy(source, base, label="stable")
    written = text_format.Parse(result.config_path.read_text(), model_server_config_pb2.ModelServerConfig())
    configs = {c.name: c for c in written.model_config_list.config}
    assert configs["other_team"] == original.model_config_list.config[0]  # byte for byte the same message
    generator = configs["generator"]  # ours: path, policy and our label change; the rest is kept
    assert generator.logging_config.sampling_config.sampling_rate == 0.5
    assert dict(generator.version_labels) == {"legacy": 1, "stable": 1}
    assert list(generator.model_version_policy.specific.versions) == [1]
    assert [c.name for c in written.model_config_list.config][:2] == ["other_team", "generator"]


def test_a_changed_version_is_refused_unless_replace(source, tmp_path):
    base = tmp_path / "models"
    deploy(source, base)
    metadata = source / S.ORACLE / "1" / "assets.extra" / S.METADATA_FILE
    metadata.write_text(metadata.read_text() + " ")
    before = _snapshot(base)
    with pytest.raises(FacemathError, match=f"{S.ORACLE}/1 is already deployed with different content"):
        deploy(source, base)
    assert _snapshot(base) == before
    result = deploy(source, base, replace=True)
    assert result.copied == [base / S.ORACLE / "1"]
    assert (base / S.ORACLE / "1" / "assets.extra" / S.METADATA_FILE).read_text() == metadata.read_text()


def test_symlinks_out_of_the_export_are_refused(source, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model file")
    os.symlink(secret, source / S.GENERATOR / "1" / "assets.extra" / "leak.txt")
    with pytest.raises(FacemathError, match="leak.txt is a symlink to .*secret.txt, outside"):
        deploy(source, tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_an_inside_symlink_is_copied_as_a_file(source, tmp_path):
    inside = source / S.GENERATOR / "1" / "assets.extra"
    os.symlink(inside / S.METADATA_FILE, inside / "alias.json")
    result = deploy(source, tmp_path / "models")
    copied = tmp_path / "models" / S.GENERATOR / "1" / "assets.extra" / "alias.json"
    assert not copied.is_symlink() and copied.read_text() == (inside / S.METADATA_FILE).read_text()
    assert result.copied


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda t: t.write_text("a file"), "exists and is not a folder"),
        (lambda t: (t.mkdir(), (t / "models.config").write_bytes(b"\xff\xfe bad")), "is not UTF-8 text"),
        (lambda t: (t.mkdir(), (t / "models.config").write_text("model_config_list { nonsense")), "not a Model"),
        (lambda t: (t.mkdir(), (t / "models.config").mkdir()), "is a folder, not a models.config"),
        (lambda t: (t.mkdir(), (t / S.GENERATOR).write_text("x")), "exists and is not a folder"),
    ],
)
def test_bad_targets_fail_before_anything_is_copied(source, tmp_path, setup, message):
    target = tmp_path / "models"
    setup(target)
    before = _snapshot(target) if target.is_dir() else target.read_bytes()
    with pytest.raises(FacemathError, match=message):
        deploy(source, target)
    assert (_snapshot(target) if target.is_dir() else target.read_bytes()) == before


def test_a_target_under_a_file_or_read_only_fails_first(source, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FacemathError, match="is a file, so no folder can be made under it"):
        deploy(source, tmp_path / "file" / "models")
    if os.geteuid() != 0:  # root writes anyway
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(FacemathError, match="cannot write in"):
                deploy(source, locked / "models")
        finally:
            locked.chmod(0o700)


def test_bad_sources(source, tmp_path):
    with pytest.raises(FacemathError, match="no such folder"):
        deploy(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacemathError, match="no exported models"):
        deploy(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(FacemathError, match="--version 5"):
        deploy(source, tmp_path / "out", version=5)
    with pytest.raises(FacemathError, match="--label"):
        deploy(source, tmp_path / "out", label="a b")
    assert not (tmp_path / "out").exists()


def _add_generator_version(source: Path, version: int = 2) -> None:
    shutil.copytree(source / S.GENERATOR / "1", source / S.GENERATOR / str(version))


def test_a_label_move_is_never_written_without_a_rollout(source, tmp_path):
    """Without --reload deploy cannot know that every replica has the new version, so it never moves a label: a
    second run is no evidence (the old behaviour moved it then, and replicas polling models.config that had not
    read the first file were stranded: tfserving_reference.py label-move-in-one-file-strands)."""
    base = tmp_path / "models"
    deploy(source, base, label="stable")
    _add_generator_version(source)
    for _ in range(2):
        result = deploy(source, base, label="stable")
        generator = {e.name: e for e in read_config(result.config_path)}[S.GENERATOR]
        assert generator.labels == {"stable": 1} and generator.versions == (1, 2)
        assert result.pending_labels == ["stable of generator: 1 -> 2"]


@pytest.mark.slow
def test_a_new_label_is_written_at_once_but_not_in_a_rollout(source, tmp_path):
    """A label not assigned yet may point at a version still loading on a server with
    --allow_version_labels_for_unavailable_models (tfserving_reference.py label-at-startup-with-flag); a rollout
    adds it only in its second step, so it works on servers without the flag too."""
    assert {e.name: e for e in read_config(deploy(source, tmp_path / "a", label="stable").config_path)}[
        S.GENERATOR
    ].labels == {"stable": 1}
    rollout = deploy(source, tmp_path / "b", label="stable", rollout=True)
    assert all(not e.labels for e in read_config(rollout.config_path))


@pytest.mark.slow
def test_deploy_reload_moves_a_label_in_two_reloads(source, tmp_path):
    """Against a stand-in that applies TF Serving's label rule: a one-reload move would be refused
    (tfserving_reference.py: label-unavailable-version); deploy's two reloads succeed."""
    from facemath_core.serving.backends.tfserving import TFServingBackend
    from facemath_core.serving.standin import build_server

    base = tmp_path / "models"
    first = deploy(source, base, label="stable")
    server, port, _ = build_server(
        read_config(first.config_path), "127.0.0.1", 0, allow_version_labels_for_unavailable_models=True
    )
    try:
        _add_generator_version(source)
        result = deploy(source, base, label="stable")
        assert reload_server(f"127.0.0.1:{port}", result, timeout=60) == 2
        assert TFServingBackend(f"127.0.0.1:{port}", label="stable").version(S.GENERATOR) == 2
        assert {e.name: e for e in read_config(result.config_path)}[S.GENERATOR].labels == {"stable": 2}
    finally:
        server.stop(0)


def test_reload_errors_are_one_line(source, tmp_path):
    from facemath_core.serving.standin import build_server

    result = deploy(source, tmp_path / "models", base_path_in_server="relative/path")
    server, port, _ = build_server([], "127.0.0.1", 0)
    try:
        with pytest.raises(
            FacemathError,
            match=rf"1 of 1 replicas .* 127.0.0.1:{port} \(reload refused: INVALID_ARGUMENT: Expected model .* to "
            "have an absolute path",
        ):
            reload_server(f"127.0.0.1:{port}", result, timeout=10)
    finally:
        server.stop(0)


def _non_utf8_config(target: Path) -> None:
    target.mkdir()
    (target / "models.config").write_bytes(b'model_config_list { config { name: "caf\xe9" } }')


def _outside_link(source: Path) -> None:
    (source.parent / "secret").write_text("x")
    os.symlink(source.parent / "secret", source / S.GENERATOR / "1" / "assets.extra" / "leak")


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda source, target: target.write_text("x"), "--to"),
        (lambda source, target: _non_utf8_config(target), "is not UTF-8 text"),
        (lambda source, target: _outside_link(source), "is a symlink to"),
    ],
    ids=["to-is-a-file", "config-not-utf8", "symlink-out-of-export"],
)
def test_cli_deploy_errors(cli, source, tmp_path, setup, message):
    """As a user sees them: one `error:` line, exit 1, no traceback, nothing under --to created or changed."""
    target = tmp_path / "models"
    setup(source, target)
    before = _snapshot(target) if target.is_dir() else (target.read_bytes() if target.exists() else None)
    result = cli("deploy", "--models", str(source), "--to", str(target))
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr
    after = _snapshot(target) if target.is_dir() else (target.read_bytes() if target.exists() else None)
    assert after == before


@pytest.mark.slow
def test_a_polling_server_follows_the_rollout(source, tmp_path):
    """The compose flags with a 1 s poll: deploy --reload of a new version with the label moves the label only
    after the server has the version; the polling server reads the same two files in the same order."""
    from facemath_core.serving.backends.tfserving import TFServingBackend
    from facemath_core.serving.deploy import roll_out
    from facemath_core.serving.standin import start_subprocess

    base = tmp_path / "models"
    first = deploy(source, base, label="stable")
    args = [
        "--model_config_file_poll_wait_seconds=1" if a.startswith("--model_config_file_poll") else a
        for a in _compose_args(first.config_path)
    ]
    process, address = start_subprocess(args=args)
    try:
        _add_generator_version(source)
        result = deploy(source, base, label="stable", rollout=True)
        assert {e.name: e for e in read_config(result.config_path)}[S.GENERATOR].labels == {"stable": 1}
        assert roll_out(result, [address], timeout=60) == [address]
        assert {e.name: e for e in read_config(result.config_path)}[S.GENERATOR].labels == {"stable": 2}
        assert TFServingBackend(address, label="stable").version(S.GENERATOR) == 2
        time.sleep(2.5)  # two more polls of the final file change nothing
        assert TFServingBackend(address, label="stable").version(S.GENERATOR) == 2
    finally:
        process.terminate()
        process.wait()


@pytest.mark.slow
def test_cli_deploy_with_reload(cli, source, tmp_path):
    from facemath_core.serving.backends.tfserving import TFServingBackend
    from facemath_core.serving.standin import build_server

    server, port, _ = build_server([], "127.0.0.1", 0)  # a server without the label flag
    try:
        base = tmp_path / "models"
        result = cli("deploy", "--models", str(source), "--to", str(base), "--label", "stable",
                     "--reload", f"127.0.0.1:{port}", "--timeout", "60")  # fmt: skip
        assert result.code == 0, result.stderr
        assert f"1 replica(s) 127.0.0.1:{port}: every deployed version AVAILABLE" in result.stdout
        assert "label stable on " in result.stdout and "on every replica" in result.stdout
        assert TFServingBackend(f"127.0.0.1:{port}", label="stable").version(S.GENERATOR) == 1
        assert {e.name: e for e in read_config(base / "models.config")}[S.GENERATOR].labels == {"stable": 1}
    finally:
        server.stop(0)


# --- TLS on the real server: --ssl_config_file -------------------------------------------------------------------


def test_the_declared_ssl_config_is_tf_servings():
    """The SSLConfig message facemath declares (the wheel has no ssl_config_pb2) has the fields of
    ssl_config.proto: names, numbers and types (tfserving_reference.py SSL_CONFIG_FIELDS)."""
    from google.protobuf.descriptor import FieldDescriptor

    from facemath_core.serving.protos import parse_ssl_config

    from .tfserving_reference import SSL_CONFIG_FIELDS

    descriptor = parse_ssl_config("").DESCRIPTOR
    assert descriptor.full_name == "tensorflow.serving.SSLConfig"
    types = {FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BOOL: "bool"}
    assert {f.name: (f.number, types[f.type]) for f in descriptor.fields} == SSL_CONFIG_FIELDS
    try:  # a later tensorflow-serving-api may ship it: then both must agree field for field
        from tensorflow_serving.config import ssl_config_pb2
    except ImportError:
        return
    official = ssl_config_pb2.SSLConfig.DESCRIPTOR
    assert [(f.name, f.number, f.type) for f in official.fields] == [
        (f.name, f.number, f.type) for f in descriptor.fields
    ]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost and a client certificate, both signed by the CA."""
    import subprocess

    d = tmp_path_factory.mktemp("pki")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")  # fmt: skip
    return d


def test_ssl_config_writes_what_the_server_reads(cli, pki, tmp_path):
    from facemath_core.serving.protos import parse_ssl_config

    out = tmp_path / "tls" / "ssl_config.txt"
    args = ["ssl-config", "--tls-cert", pki / "server.pem", "--tls-key", pki / "server.key", "--out", out]
    result = cli(*args, "--tls-client-ca", pki / "ca.pem")
    assert result.code == 0 and "mutual TLS" in result.stdout, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600  # it holds the private key
    config = parse_ssl_config(out.read_text())
    assert config.server_cert == (pki / "server.pem").read_text()
    assert config.server_key == (pki / "server.key").read_text()
    assert config.custom_ca == (pki / "ca.pem").read_text() and config.client_verify
    refused = cli(*args)
    assert refused.code == 1 and "file exists (use --overwrite" in refused.stderr
    assert cli(*args, "--overwrite").code == 0
    plain = parse_ssl_config(out.read_text())
    assert not plain.custom_ca and not plain.client_verify
    mismatch = cli("ssl-config", "--tls-cert", pki / "server.pem", "--tls-key", pki / "client.key", "--out",
                   tmp_path / "x.txt")  # fmt: skip
    assert mismatch.code == 1 and "is not the private key of" in mismatch.stderr
    assert not (tmp_path / "x.txt").exists()


def _compose_tls_args(config: Path, ssl_config: Path) -> list[str]:
    """docker-compose.tls.yml's command line (it replaces the base file's), pointed at local files: the models
    config, serving/, and the compose secret's mount point."""
    override = yaml.safe_load((SERVING / "docker-compose.tls.yml").read_text())
    command = override["services"]["tfserving"]["command"]
    secret = override["services"]["tfserving"]["secrets"][0]
    args = []
    for arg in command:
        arg = arg.replace("/models/models.config", str(config)).replace("/config/", f"{SERVING}/")
        args.append("--port=0" if arg.startswith("--port=") else arg.replace(f"/run/secrets/{secret}", str(ssl_config)))
    return args


def test_the_compose_tls_override(pki):
    """The override adds --ssl_config_file to the base command line, nothing else, from a compose secret (mounted
    read-only at /run/secrets/NAME)."""
    base = yaml.safe_load((SERVING / "docker-compose.yml").read_text())["services"]["tfserving"]["command"]
    override = yaml.safe_load((SERVING / "docker-compose.tls.yml").read_text())
    service = override["services"]["tfserving"]
    (secret,) = service["secrets"]
    assert service["command"] == [*base, f"--ssl_config_file=/run/secrets/{secret}"]
    assert override["secrets"][secret]["file"].startswith("./tls/")
    assert (SERVING / "tls" / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
@pytest.mark.slow
def test_the_compose_tls_command_serves_tls_clients(cli, source, tmp_path, pki, mutual):
    """The TLS command line run against the stand-in, with an SSLConfig from `facemath ssl-config`: facemath's
    client connects with --tls-ca (and a client certificate when client_verify), and not without."""
    from facemath_core.serving.backends.tfserving import TFServingBackend
    from facemath_core.serving.standin import start_subprocess

    ssl_config = tmp_path / "ssl_config.txt"
    extra = ["--tls-client-ca", pki / "ca.pem"] if mutual else []
    assert cli("ssl-config", "--tls-cert", pki / "server.pem", "--tls-key", pki / "server.key", *extra,
               "--out", ssl_config).code == 0  # fmt: skip
    result = deploy(source, tmp_path / "models", label="stable")
    process, address = start_subprocess(args=_compose_tls_args(result.config_path, ssl_config))
    target = address.replace("127.0.0.1", "localhost")
    client = dict(tls_cert=str(pki / "client.pem"), tls_key=str(pki / "client.key")) if mutual else {}
    try:
        backend = TFServingBackend(target, label="stable", tls_ca=str(pki / "ca.pem"), **client)
        assert backend.generate(np.zeros((1, 8), np.float32)).shape == (1, 32, 32, 3)
        with pytest.raises(FacemathError, match="UNAVAILABLE"):
            TFServingBackend(target, retries=0, timeout=5).version(S.GENERATOR)  # plaintext
        if mutual:
            with pytest.raises(FacemathError, match="UNAVAILABLE"):
                TFServingBackend(target, tls_ca=str(pki / "ca.pem"), retries=0, timeout=5).version(S.GENERATOR)
    finally:
        process.terminate()
        process.wait()
