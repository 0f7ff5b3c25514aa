"""The stand-in server against TF Serving's documented behaviour, through the official stubs only; the
tfserving backend; parity with the embedded backend; a server restart in the middle of a projection."""

import socket
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.serving.backends.embedded import EmbeddedBackend
from facemath_core.serving.backends.tfserving import TFServingBackend
from facemath_core.serving.model_config import ModelEntry, entries_for_folder, to_proto
from facemath_core.serving.standin import build_server


@pytest.fixture(scope="module")
def served(tiny_export, tmp_path_factory):
    """The tiny models with two generator versions (1 and 2) and a label, on an ephemeral loopback port."""
    import shutil

    base = tmp_path_factory.mktemp("served")
    for name in S.MODEL_NAMES:
        shutil.copytree(tiny_export / name, base / name)
    shutil.copytree(base / S.GENERATOR / "1", base / S.GENERATOR / "2")
    entries = [
        e if e.name != S.GENERATOR else ModelEntry(e.name, e.base_path, "all", labels={"stable": 1})
        for e in entries_for_folder(base)
    ]
    # A labelled config at start-up needs the flag, as with tensorflow_model_server
    # (tests/serving/tfserving_reference.py).
    server, port, store = build_server(entries, "127.0.0.1", 0, allow_version_labels_for_unavailable_models=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield {
        "port": port,
        "base": base,
        "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
        "models": model_service_pb2_grpc.ModelServiceStub(channel),
        "store": store,
    }
    channel.close()
    server.stop(0)


def predict(stub, name="generator", signature="", version=None, label=None, inputs=None, output_filter=(), timeout=30):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for alias, value in (inputs if inputs is not None else {"z": np.zeros((2, 8), np.float32)}).items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return stub.Predict(request, timeout=timeout)


def error_of(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_predict_echoes_the_resolved_spec_and_answers_with_float_val(served):
    response = predict(served["predict"])
    assert response.model_spec.name == "generator"
    assert response.model_spec.version.value == 2  # latest
    assert response.model_spec.signature_name == "serving_default"
    images = response.outputs["images"]
    assert not images.tensor_content and len(images.float_val) == 2 * 32 * 32 * 3
    assert [d.size for d in images.tensor_shape.dim] == [2, 32, 32, 3]
    labelled = predict(served["predict"], label="stable")
    assert labelled.model_spec.version.value == 1  # the number, even when a label was asked for


@pytest.mark.parametrize(
    "kwargs, code, message",
    [
        (dict(name="nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (dict(version=7), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(generator, 7)"),
        (dict(label="canary"), grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary"),
        (dict(signature="vjpp"), grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "vjpp" not found.'),
        (dict(name=""), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
        (dict(signature="vjp"), grpc.StatusCode.INVALID_ARGUMENT, "Missing but required: {cotangent}"),
        (
            dict(inputs={"zz": np.zeros((1, 8), np.float32)}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Signature input alias: z(feed name: serving_default_z:0) not found in request",
        ),
        (
            dict(inputs={"z": np.zeros((1, 8))}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Expects arg[0] to be float but double is provided",
        ),
        (
            dict(output_filter=["pixels"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "output tensor alias not found in signature: pixels",
        ),
        (
            dict(output_filter=["images", "images"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "duplicate output tensor alias: images",
        ),
        (dict(inputs={"z": np.zeros((1, 5), np.float32)}), grpc.StatusCode.INVALID_ARGUMENT, ""),
    ],
)
def test_errors_are_the_real_servers(served, kwargs, code, message):
    got_code, details = error_of(lambda: predict(served["predict"], **kwargs))
    assert got_code == code and message in details, details


def test_missing_model_spec(served):
    code, details = error_of(lambda: served["predict"].Predict(predict_pb2.PredictRequest(), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details == "Missing ModelSpec"


def test_metadata_needs_the_field_and_answers_a_signature_map(served):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "discriminator"
    code, details = error_of(lambda: served["predict"].GetModelMetadata(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "GetModelMetadataRequest must specify at least one metadata_field"
    request.metadata_field.append("signature_def")
    response = served["predict"].GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "grad", "metadata"} <= set(signatures.signature_def)
    assert response.model_spec.version.value == 1


def test_model_status_and_reload(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "generator"
    response = served["models"].GetModelStatus(request, timeout=10)
    assert sorted((s.version, s.state) for s in response.model_version_status) == [(1, 30), (2, 30)]
    request.model_spec.name = "nope"
    code, details = error_of(lambda: served["models"].GetModelStatus(request, timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and details == "Could not find any versions of model nope"
    # Reload replaces the whole list: only version 1 of the generator, labelled canary.
    entries = [
        e
        if e.name != "generator"
        else ModelEntry("generator", e.base_path, "specific", versions=(1,), labels={"canary": 1})
        for e in entries_for_folder(served["base"])
    ]
    served["models"].HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=to_proto(entries)), timeout=60
    )
    assert predict(served["predict"]).model_spec.version.value == 1
    assert predict(served["predict"], label="canary").model_spec.version.value == 1
    # Back to the fixture's config for the other tests.
    entries = [
        e if e.name != "generator" else ModelEntry("generator", e.base_path, "all", labels={"stable": 1})
        for e in entries_for_folder(served["base"])
    ]
    served["models"].HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=to_proto(entries)), timeout=60
    )


def test_the_clients_deadline_is_honoured(served):
    code, _ = error_of(lambda: predict(served["predict"], inputs={"z": np.zeros((2000, 8), np.float32)}, timeout=0.001))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_backend_pins_the_first_version_it_sees(served):
    backend = TFServingBackend(f"127.0.0.1:{served['port']}")
    assert backend.version(S.GENERATOR) == 2
    assert backend.metadata(S.GENERATOR)["z_dim"] == 8
    pinned = TFServingBackend(f"127.0.0.1:{served['port']}", label="stable")
    assert pinned.version(S.GENERATOR) == 1
    with pytest.raises(FacemathError, match="Specific\\(generator, 9\\)"):
        TFServingBackend(f"127.0.0.1:{served['port']}", version=9).generate(np.zeros((1, 8), np.float32))


def test_backend_matches_embedded_and_splits_large_batches(served, tiny_export):
    remote = TFServingBackend(f"127.0.0.1:{served['port']}", version=1)
    local = EmbeddedBackend(tiny_export)
    z = np.random.default_rng(0).uniform(-1, 1, (300, 8)).astype(np.float32)
    before = remote.calls
    np.testing.assert_allclose(remote.generate(z), local.generate(z), atol=1e-5)
    assert remote.calls - before >= 2  # 300 images of 12 KiB: split under the message limit
    images = local.generate(z[:4])
    for a, b in zip(remote.discriminator_grad(images), local.discriminator_grad(images), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_round_robin_over_a_list_of_endpoints(served):
    """Two servers listed: each one's own count of the model specs it resolved shows that both got traffic."""
    second, port, store = build_server(entries_for_folder(served["base"]), "127.0.0.1", 0)
    resolved = {"first": 0, "second": 0}

    def counting(which, resolve):
        def resolve_and_count(spec):
            resolved[which] += 1
            return resolve(spec)

        return resolve_and_count

    served["store"].resolve = counting("first", served["store"].resolve)
    store.resolve = counting("second", store.resolve)
    try:
        backend = TFServingBackend(f"127.0.0.1:{served['port']},localhost:{port}")
        assert len(backend.channels) == 2
        for _ in range(4):
            backend.generate(np.zeros((2, 8), np.float32))
    finally:
        del served["store"].resolve  # the class's method again
        second.stop(0)
    assert resolved["first"] >= 2 and resolved["second"] >= 2, resolved


def test_unreachable_server_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = TFServingBackend(f"127.0.0.1:{port}", retries=1, backoff=0.05, timeout=2)
    with pytest.raises(
        FacemathError, match=f"server 127.0.0.1:{port}, model generator: GetModelMetadata failed: UNAVAILABLE"
    ):
        backend.metadata(S.GENERATOR)


def test_a_served_model_with_other_signatures_is_refused(tiny_export, tmp_path):
    import shutil

    shutil.copytree(tiny_export / S.ORACLE, tmp_path / S.GENERATOR)  # the oracle, served as "generator"
    server, port, _ = build_server(entries_for_folder(tmp_path), "127.0.0.1", 0)
    try:
        with pytest.raises(
            FacemathError,
            match=f"server 127.0.0.1:{port}, model generator: signature 'serving_default' "
            r"has inputs \['images'\] and outputs \['attribute_logits'\], "
            r"facemath needs \['z'\] and \['images'\]",
        ):
            TFServingBackend(f"127.0.0.1:{port}").generate(np.zeros((1, 8), np.float32))
    finally:
        server.stop(0)


@pytest.mark.slow
def test_projection_parity_with_the_embedded_backend(served, tiny_export):
    """Same seed, same config: the z trajectories agree to 1e-4 after 20 steps (float32 arithmetic, the same
    SavedModels; only the gradient's route differs: local autodiff versus the served vjp / grad signatures)."""
    from dataclasses import replace

    from facemath_core.host.manager import load_registry
    from facemath_core.projection.projector import LossSpec, ProjectionConfig, Projector

    config = replace(
        ProjectionConfig(steps=20, patience=1000), losses=(LossSpec("contextual", 1.0), LossSpec("perceptual", 0.1))
    )
    local = EmbeddedBackend(tiny_export, versions={S.GENERATOR: 1})
    remote = TFServingBackend(f"127.0.0.1:{served['port']}", version=1)
    targets = local.generate(np.random.default_rng(3).uniform(-1, 1, (4, 8)).astype(np.float32))
    masks = np.ones((4, 32, 32), np.float32)
    results = []
    for backend in (local, remote):
        projector = Projector(backend, load_registry(builtins_only=True), config)
        z0 = projector.initial_z(targets, np.random.default_rng(0))
        results.append(projector.project(targets, masks, z0).state["variable"])
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(models, port):
    from facemath_core.serving.standin import start_subprocess

    return start_subprocess(models, port)[0]


@pytest.mark.slow
def test_server_restart_in_the_middle_of_a_projection(tiny_export, tmp_path):
    """Kill the server during a projection and start it again: the client retries, and the final z equals an
    uninterrupted run's."""
    import threading
    from dataclasses import replace

    from facemath_core.host.manager import load_registry
    from facemath_core.projection.projector import ProjectionConfig, Projector

    port = _free_port()
    server = _start_server(tiny_export, port)
    try:
        config = replace(ProjectionConfig(steps=30, patience=1000))
        targets = EmbeddedBackend(tiny_export).generate(
            np.random.default_rng(5).uniform(-1, 1, (3, 8)).astype(np.float32)
        )
        masks = np.ones((3, 32, 32), np.float32)

        def project(backend, on_step=None):
            projector = Projector(backend, load_registry(builtins_only=True), config)
            z0 = projector.initial_z(targets, np.random.default_rng(0))
            return projector.project(targets, masks, z0, progress=on_step).state["variable"]

        uninterrupted = project(TFServingBackend(f"127.0.0.1:{port}"))
        restarted = threading.Event()

        def kill_at_step_10(step, mean, terms):
            nonlocal server
            if step == 10 and not restarted.is_set():
                server.kill()
                server.wait()
                threading.Timer(1.0, lambda: restart()).start()
                restarted.set()

        def restart():
            nonlocal server
            server = _start_server(tiny_export, port)

        interrupted = project(TFServingBackend(f"127.0.0.1:{port}", retries=20, backoff=0.25), kill_at_step_10)
        assert restarted.is_set()
        np.testing.assert_allclose(interrupted, uninterrupted, atol=1e-6)
    finally:
        time.sleep(0.1)
        server.kill()
        server.wait()


@pytest.mark.slow
def test_tensor_content_answers_are_read_too(tiny_export):
    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0, tensor_content=True)
    try:
        z = np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32)
        np.testing.assert_allclose(
            TFServingBackend(f"127.0.0.1:{port}").generate(z), EmbeddedBackend(tiny_export).generate(z), atol=1e-5
        )
    finally:
        server.stop(0)


def test_tls(tiny_export, tmp_path):
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    credentials = grpc.ssl_server_credentials(
        [((tmp_path / "key.pem").read_bytes(), (tmp_path / "cert.pem").read_bytes())]
    )
    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0, credentials=credentials)
    try:
        backend = TFServingBackend(f"localhost:{port}", tls_ca=str(tmp_path / "cert.pem"))
        assert backend.generate(np.zeros((1, 8), np.float32)).shape == (1, 32, 32, 3)
        plain = TFServingBackend(f"localhost:{port}", retries=0, timeout=5)
        with pytest.raises(FacemathError, match="UNAVAILABLE"):
            plain.generate(np.zeros((1, 8), np.float32))
    finally:
        server.stop(0)


def test_parallel_requests_split_a_batch(served):
    backend = TFServingBackend(f"127.0.0.1:{served['port']}", in_flight=4, version=1)
    backend.metadata(S.GENERATOR)
    before = backend.calls
    images = backend.generate(np.zeros((8, 8), np.float32))
    assert backend.calls - before == 4 and images.shape == (8, 32, 32, 3)


@pytest.mark.slow
def test_cli_with_a_server_that_is_down(cli, tmp_path):

    faces = __import__("pathlib").Path(__file__).parents[2] / "examples" / "faces"
    port = _free_port()
    result = cli(
        "project",
        str(faces / "000001.png"),
        "--server",
        f"127.0.0.1:{port}",
        "--out",
        str(tmp_path / "out"),
        "--timeout",
        "2",
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.code == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"server 127.0.0.1:{port}, model generator" in lines[0] and "UNAVAILABLE" in lines[0]
    assert not (tmp_path / "out").exists()


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost and a client certificate, both signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=facemath test CA",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
    )
    extensions = {"server": "subjectAltName=DNS:localhost,IP:127.0.0.1", "client": "extendedKeyUsage=clientAuth"}
    for name, extension in extensions.items():
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        (d / f"{name}.ext").write_text(extension + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.pem"),
        )
    return d


@pytest.mark.slow
def test_mutual_tls_on_serve_deploy_reload_and_wait(tiny_export, tmp_path, pki):
    """`facemath serve --tls-client-ca` requires a client certificate; the backend, `deploy --reload` and
    wait_until_available connect with one, and without one the handshake fails."""
    from facemath_core.serving.backends.tfserving import wait_until_available
    from facemath_core.serving.deploy import deploy, reload_server
    from facemath_core.serving.standin import start_subprocess

    process, address = start_subprocess(
        args=[
            "--models",
            str(tiny_export),
            "--port",
            "0",
            "--tls-cert",
            str(pki / "server.pem"),
            "--tls-key",
            str(pki / "server.key"),
            "--tls-client-ca",
            str(pki / "ca.pem"),
        ]
    )
    target = address.replace("127.0.0.1", "localhost")
    tls = dict(tls_ca=str(pki / "ca.pem"), tls_cert=str(pki / "client.pem"), tls_key=str(pki / "client.key"))
    try:
        assert TFServingBackend(target, **tls).generate(np.zeros((1, 8), np.float32)).shape == (1, 32, 32, 3)
        no_client_cert = TFServingBackend(target, tls_ca=tls["tls_ca"], retries=0, timeout=5)
        with pytest.raises(FacemathError, match="UNAVAILABLE"):
            no_client_cert.generate(np.zeros((1, 8), np.float32))
        result = deploy(tiny_export, tmp_path / "models", label="stable")
        assert reload_server(target, result, 60, **tls) == 2  # versions, then the label
        wait_until_available(target, [S.GENERATOR], 30, version=1, **tls)
        assert TFServingBackend(target, label="stable", **tls).version(S.GENERATOR) == 1
        with pytest.raises(FacemathError, match="--reload"):
            reload_server(target, result, 5, tls_ca=tls["tls_ca"])
    finally:
        process.terminate()
        process.wait()


@pytest.fixture(scope="module")
def with_projector(tiny_export):
    """The tiny export (which holds the projector built from its generator and discriminator) on loopback."""
    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _project(backend, losses, steps=15, n=4, tiny_export=None):
    from dataclasses import replace

    from facemath_core.host.manager import load_registry
    from facemath_core.projection.projector import ProjectionConfig, Projector

    config = replace(ProjectionConfig(steps=steps, patience=1000), losses=losses)
    local = EmbeddedBackend(tiny_export)
    targets = local.generate(np.random.default_rng(3).uniform(-1, 1, (n, 8)).astype(np.float32))
    masks = np.ones((n, 32, 32), np.float32)
    masks[:, 8:20, 10:22] = 0  # a hole, so weighted-contextual has weights to apply
    projector = Projector(backend, load_registry(builtins_only=True), config)
    z0 = projector.initial_z(targets, np.random.default_rng(0))
    return projector, projector.project(targets, masks, z0)


@pytest.mark.parametrize(
    "losses",
    [
        ("contextual", 1.0, {}, "perceptual", 0.1, {"form": "nonsaturating"}),
        ("weighted-contextual", 1.0, {"window": 7}, "perceptual", 0.003, {"form": "saturating"}),
        ("l2", 1.0, {}, "lowres", 0.5, {"factor": 4}),
    ],
)
@pytest.mark.slow
def test_the_projector_takes_one_request_per_step_and_matches_embedded(with_projector, tiny_export, losses):
    """Same seed, same terms: the z and every term agree with the embedded backend's (autodiff in-process) to
    float32 accuracy, and each step is exactly one Predict."""
    from facemath_core.projection.projector import LossSpec

    specs = (LossSpec(losses[0], losses[1], losses[2]), LossSpec(losses[3], losses[4], losses[5]))
    _, local = _project(EmbeddedBackend(tiny_export), specs, tiny_export=tiny_export)
    remote_backend = TFServingBackend(with_projector)
    projector, remote = _project(remote_backend, specs, tiny_export=tiny_export)
    assert projector.fused is not None
    np.testing.assert_allclose(remote.state["variable"], local.state["variable"], atol=1e-4)
    for name in local.terms:
        np.testing.assert_allclose(remote.terms[name], local.terms[name], rtol=1e-4, atol=1e-3)
    before = remote_backend.calls
    _project(remote_backend, specs, steps=5, tiny_export=tiny_export)
    assert remote_backend.calls - before == 5


@pytest.mark.slow
def test_other_terms_fall_back_to_the_three_request_path(with_projector, tiny_export):
    """A term the projector does not contain (other parameters, a third-party plugin) still works remotely,
    through vjp + grad, and matches embedded."""
    from facemath_core.host.manager import load_registry
    from facemath_core.projection.projector import LossSpec, ProjectionConfig, Projector

    backend = TFServingBackend(with_projector)
    other_params = (LossSpec("weighted-contextual", 1.0, {"window": 5}),)
    assert _project(backend, other_params, steps=2, tiny_export=tiny_export)[0].fused is None
    plugin = Path(__file__).parents[2] / "examples" / "facemath-tv-loss" / "facemath_tv.py"
    registry = load_registry([str(plugin)], builtins_only=True)
    specs = (LossSpec("contextual", 1.0), LossSpec("tv", 0.5))  # the example third-party plugin
    config = ProjectionConfig(steps=3, patience=1000, losses=specs)
    targets = EmbeddedBackend(tiny_export).generate(np.zeros((2, 8), np.float32))
    masks = np.ones((2, 32, 32), np.float32)
    results = []
    for b in (backend, EmbeddedBackend(tiny_export)):
        projector = Projector(b, registry, config)
        z0 = projector.initial_z(targets, np.random.default_rng(0))
        results.append((projector.fused, projector.project(targets, masks, z0).state["variable"]))
    assert results[0][0] is None
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-4)
