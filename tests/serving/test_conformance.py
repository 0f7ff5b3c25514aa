"""The stand-in server against tests/serving/tfserving_reference.py: every row of the table is one scenario here, run
through the official tensorflow_serving.apis stubs, and must give the row's status code and message fragment."""

from __future__ import annotations

import shutil
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from facemath_core.base import signatures as S
from facemath_core.serving.model_config import ModelEntry, entries_for_folder, to_proto
from facemath_core.serving.standin import ServingError, build_server

from .tfserving_reference import ROWS, row


@pytest.fixture(scope="module")
def base(tiny_export, tmp_path_factory):
    """The tiny models, the generator in versions 1 and 2."""
    root = tmp_path_factory.mktemp("conformance")
    for name in S.MODEL_NAMES:
        shutil.copytree(tiny_export / name, root / name)
    shutil.copytree(root / S.GENERATOR / "1", root / S.GENERATOR / "2")
    return root


class Server:
    def __init__(self, entries, **options):
        self.server, self.port, self.store = build_server(entries, "127.0.0.1", 0, **options)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self):
        self.channel.close()
        self.server.stop(0)


def _entries(base, generator: ModelEntry | None = None):
    return [generator if generator is not None and e.name == S.GENERATOR else e for e in entries_for_folder(base)]


def _generator(base, policy="all", versions=(), labels=None):
    return ModelEntry(S.GENERATOR, str(base / S.GENERATOR), policy, versions=versions, labels=labels or {})


@pytest.fixture(scope="module")
def server(base):
    s = Server(_entries(base, _generator(base, labels={"stable": 1})), allow_version_labels_for_unavailable_models=True)
    yield s
    s.close()


def outcome(call) -> tuple[str, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""
    return "OK", ""


def predict_request(name=S.GENERATOR, signature="", version=None, label=None, inputs=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for alias, value in (inputs if inputs is not None else {S.Z: np.zeros((2, 8), np.float32)}).items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return request


def status_request(name=S.GENERATOR, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def metadata_request(name=S.GENERATOR, fields=("signature_def",)):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    request.model_spec.name = name
    return request


def reload(s: Server, entries, timeout=60):
    request = model_management_pb2.ReloadConfigRequest(config=to_proto(entries))
    return outcome(lambda: s.models.HandleReloadConfigRequest(request, timeout=timeout))


def serves(s: Server, name=S.GENERATOR) -> bool:
    return outcome(lambda: s.predict.Predict(predict_request(name), timeout=30))[0] == "OK"


# --- one scenario per row: returns (code, details) ------------------------------------------------------------


def _p(server, **kw):
    return outcome(lambda: server.predict.Predict(predict_request(**kw), timeout=30))


def _label_resolves(server):
    response = server.predict.Predict(predict_request(label="stable"), timeout=30)
    assert response.model_spec.version.value == 1 and response.model_spec.name == S.GENERATOR
    return "OK", ""


def _fresh_reload(base, entries, then, **options):
    """A server of its own for a reload scenario; `then(server, code, details)` checks what must still hold."""
    s = Server(_entries(base), **options)
    try:
        code, details = reload(s, entries)
        then(s)
        return code, details
    finally:
        s.close()


def _still_serving(s):
    """A rejected reload changed nothing: every model of the start-up config still answers."""
    assert serves(s) and s.store.versions(S.GENERATOR) == [2]  # start-up config: latest version only
    request = predict_request(S.DISCRIMINATOR, inputs={S.IMAGES: np.zeros((1, 32, 32, 3), np.float32)})
    assert outcome(lambda: s.predict.Predict(request, timeout=30))[0] == "OK"


def _corrupt(base, tmp_path):
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    return ModelEntry("broken", str(broken.parent))


def _long_message(server):
    inputs = {f"alias_{i:04d}_" + "x" * 40: np.zeros((1, 8), np.float32) for i in range(40)}
    return _p(server, inputs=inputs)


def _batching(base, rows):
    s = Server(_entries(base), max_batch_size=128)
    try:
        return _p(s, inputs={S.Z: np.zeros((rows, 8), np.float32)})
    finally:
        s.close()


def _startup(base, with_flag):
    try:
        s = Server(
            _entries(base, _generator(base, "specific", (2,), {"stable": 2})),
            allow_version_labels_for_unavailable_models=with_flag,
        )
    except ServingError as exc:
        return exc.code.name, exc.message
    try:
        assert s.predict.Predict(predict_request(label="stable"), timeout=30).model_spec.version.value == 2
        return "OK", ""
    finally:
        s.close()


def _label_move(base, with_flag, first_load):
    """stable on version 1; move it to 2 (optionally after a reload that loads 2 without moving the label)."""
    s = Server(_entries(base, _generator(base, "specific", (1,))), **with_flag)
    try:
        assert reload(s, _entries(base, _generator(base, "specific", (1,), {"stable": 1})))[0] == "OK"
        if first_load:
            assert reload(s, _entries(base, _generator(base, "specific", (1, 2), {"stable": 1})))[0] == "OK"
        code, details = reload(s, _entries(base, _generator(base, "specific", (1, 2), {"stable": 2})))
        expected = 2 if code == "OK" else 1
        assert s.predict.Predict(predict_request(label="stable"), timeout=30).model_spec.version.value == expected
        return code, details
    finally:
        s.close()


def _message_size(server):
    small = grpc.insecure_channel(f"127.0.0.1:{server.port}")  # default options: 4 MiB receive limit
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(small)
        return outcome(lambda: stub.Predict(predict_request(inputs={S.Z: np.zeros((400, 8), np.float32)}), timeout=60))
    finally:
        small.close()


def _multi_inference(server, *names):
    request = inference_pb2.MultiInferenceRequest()
    for name in names:
        task = request.tasks.add()
        task.model_spec.name = name
        task.method_name = "tensorflow/serving/classify"
    return outcome(lambda: server.predict.MultiInference(request, timeout=30))


def _vjp_inputs(z_rows, cotangent_rows):
    return {S.Z: np.zeros((z_rows, 8), np.float32), S.COTANGENT: np.zeros((cotangent_rows, 32, 32, 3), np.float32)}


def _batching_request(base, signature, inputs):
    s = Server(_entries(base), max_batch_size=128)
    try:
        return _p(s, signature=signature, inputs=inputs)
    finally:
        s.close()


def _missing_base_path(base, tmp_path):
    """A new model whose base path does not exist: the reload waits past the client's deadline and holds the
    reload lock (a second reload times out too); it completes, and the model serves, once a version appears."""
    s = Server(_entries(base))
    try:
        late = tmp_path / "late"
        entries = _entries(base) + [ModelEntry("late", str(late))]
        request = model_management_pb2.ReloadConfigRequest(config=to_proto(entries))
        code = outcome(lambda: s.models.HandleReloadConfigRequest(request, timeout=2))[0]
        assert reload(s, entries, timeout=1)[0] == "DEADLINE_EXCEEDED"  # queued behind the waiting reload
        assert s.store.versions("late") == [] and serves(s)  # the models already loaded keep serving
        shutil.copytree(base / S.GENERATOR / "1", late / "3")
        deadline = time.monotonic() + 30
        while s.store.versions("late") != [3]:
            assert time.monotonic() < deadline, "the waiting reload never saw the version"
            time.sleep(0.2)
        assert serves(s, "late")
        return code, ""
    finally:
        s.close()


LABEL_FLAG = {"allow_version_labels_for_unavailable_models": True}  # as the shipped manifests run the server


def _refused_config_is_kept(base):
    """server_core.cc stores config_ before the label check: the refused config's platform for `other` is what the
    next reload is compared with."""
    s = Server(_entries(base, _generator(base, "specific", (1,), {"stable": 1})), **LABEL_FLAG)
    try:
        other = ModelEntry("other", str(base / S.DISCRIMINATOR), platform="pytorch")
        refused = _entries(base, _generator(base, "specific", (1, 2), {"stable": 2})) + [other]
        assert reload(s, refused)[0] == "FAILED_PRECONDITION"
        assert s.store.versions(S.GENERATOR) == [1] and s.store.versions("other") == []
        fixed = _entries(base, _generator(base, "specific", (1,), {"stable": 1}))
        return reload(s, fixed + [ModelEntry("other", str(base / S.DISCRIMINATOR))])
    finally:
        s.close()


def _one_file_move_strands(base):
    """The version and the label in one config, reloaded twice as a poll does: refused both times, and version 2
    is never loaded, so the label can never move."""
    s = Server(_entries(base, _generator(base, "specific", (1,), {"stable": 1})), **LABEL_FLAG)
    try:
        both = _entries(base, _generator(base, "specific", (1, 2), {"stable": 2}))
        first = reload(s, both)
        second = reload(s, both)
        assert first[0] == "FAILED_PRECONDITION" and s.store.versions(S.GENERATOR) == [1]
        assert s.predict.Predict(predict_request(label="stable"), timeout=30).model_spec.version.value == 1
        return second
    finally:
        s.close()


def _classify(server, signature=""):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = S.GENERATOR
    request.model_spec.signature_name = signature
    return outcome(lambda: server.predict.Classify(request, timeout=30))


def _regress(server):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = S.GENERATOR
    return outcome(lambda: server.predict.Regress(request, timeout=30))


def _replaces_list(base):
    s = Server(_entries(base))
    try:
        code, details = reload(s, [e for e in _entries(base) if e.name == S.GENERATOR])
        assert serves(s) and not serves(s, S.DISCRIMINATOR)
        return code, details
    finally:
        s.close()


def scenarios(base, server, tmp_path):
    entries = _entries(base)
    relative = [ModelEntry(e.name, "models/" + e.name) if e.name == S.ORACLE else e for e in entries]
    return {
        "status-no-spec": lambda: outcome(
            lambda: server.models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(), timeout=10)
        ),
        "status-unknown-model": lambda: outcome(
            lambda: server.models.GetModelStatus(status_request("nope"), timeout=10)
        ),
        "status-unknown-version": lambda: outcome(
            lambda: server.models.GetModelStatus(status_request(version=9), timeout=10)
        ),
        "metadata-no-spec": lambda: outcome(
            lambda: server.predict.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(), timeout=10)
        ),
        "metadata-no-field": lambda: outcome(
            lambda: server.predict.GetModelMetadata(metadata_request("nope", ()), timeout=10)
        ),
        "metadata-bad-field": lambda: outcome(
            lambda: server.predict.GetModelMetadata(metadata_request("nope", ("bogus",)), timeout=10)
        ),
        "metadata-unknown-model": lambda: outcome(
            lambda: server.predict.GetModelMetadata(metadata_request("nope"), timeout=10)
        ),
        "predict-no-spec": lambda: outcome(lambda: server.predict.Predict(predict_pb2.PredictRequest(), timeout=10)),
        "predict-empty-name": lambda: _p(server, name=""),
        "predict-unknown-model": lambda: _p(server, name="nope"),
        "predict-unknown-version": lambda: _p(server, version=7),
        "predict-unknown-label": lambda: _p(server, label="canary"),
        "predict-unknown-signature": lambda: _p(server, signature="vjpp"),
        "predict-missing-input": lambda: _p(server, signature=S.VJP),
        "predict-missing-input-names": lambda: _p(server, signature=S.VJP),
        "predict-unknown-input": lambda: _p(server, inputs={"zz": np.zeros((1, 8), np.float32)}),
        "predict-unknown-input-names-feed": lambda: _p(server, inputs={"zz": np.zeros((1, 8), np.float32)}),
        "predict-op-error": lambda: _p(server, signature=S.VJP, inputs=_vjp_inputs(2, 3)),
        "predict-wrong-dtype": lambda: _p(server, inputs={S.Z: np.zeros((1, 8))}),
        "predict-unknown-output": lambda: _p(server, output_filter=["pixels"]),
        "predict-duplicate-output": lambda: _p(server, output_filter=[S.IMAGES, S.IMAGES]),
        "predict-wrong-shape": lambda: _p(server, inputs={S.Z: np.zeros((1, 5), np.float32)}),
        "predict-undeclared-shape-runs": lambda: _p(
            server, signature=S.METADATA, inputs={S.METADATA_INDEX: np.zeros((2, 1), np.float32)}
        ),
        "predict-other-batch-size": lambda: _p(server, inputs={S.Z: np.zeros((3, 8), np.float32)}),
        "predict-label-resolves-to-number": lambda: _label_resolves(server),
        "classify-predict-signature": lambda: _classify(server),
        "classify-two-inputs": lambda: _classify(server, S.VJP),
        "regress-predict-signature": lambda: _regress(server),
        "multi-inference-predict-signature": lambda: _multi_inference(server, S.GENERATOR),
        "multi-inference-empty-name": lambda: _multi_inference(server, ""),
        "multi-inference-second-task-empty-name": lambda: _multi_inference(server, S.GENERATOR, ""),
        "reload-empty-config": lambda: _fresh_reload(base, [], _still_serving),
        "reload-duplicate-name": lambda: _fresh_reload(base, entries + entries[:1], _still_serving),
        "reload-relative-base-path": lambda: _fresh_reload(base, relative, _still_serving),
        "reload-unknown-platform": lambda: _fresh_reload(
            base, entries + [ModelEntry("other", str(base / S.GENERATOR), "all", platform="pytorch")], _still_serving
        ),
        "reload-change-platform": lambda: _fresh_reload(
            base, [ModelEntry(S.GENERATOR, str(base / S.GENERATOR), "all", platform="pytorch")], _still_serving
        ),
        "reload-missing-base-path": lambda: _missing_base_path(base, tmp_path),
        "label-refused-config-kept": lambda: _refused_config_is_kept(base),
        "label-move-in-one-file-strands": lambda: _one_file_move_strands(base),
        "reload-no-platform": lambda: _fresh_reload(
            base, [ModelEntry(S.GENERATOR, str(base / S.GENERATOR), "all", platform="")], _still_serving
        ),
        "reload-corrupt-savedmodel": lambda: _fresh_reload(
            base, entries + [_corrupt(base, tmp_path)], lambda s: serves(s)
        ),
        "reload-replaces-list": lambda: _replaces_list(base),
        "label-unavailable-version": lambda: _label_move(base, {}, first_load=False),
        "label-at-startup": lambda: _startup(base, with_flag=False),
        "label-at-startup-with-flag": lambda: _startup(base, with_flag=True),
        "label-move-with-flag-refused": lambda: _label_move(
            base, {"allow_version_labels_for_unavailable_models": True}, first_load=False
        ),
        "label-move-after-available": lambda: _label_move(base, {}, first_load=True),
        "batching-max-batch-size": lambda: _batching(base, 129),
        "batching-at-limit": lambda: _batching(base, 128),
        "batching-unequal-0th-dim": lambda: _batching_request(base, S.VJP, _vjp_inputs(2, 3)),
        "batching-scalar-input": lambda: _batching_request(
            base, S.METADATA, {S.METADATA_INDEX: np.zeros((), np.float32)}
        ),
        "deadline": lambda: outcome(
            lambda: server.predict.Predict(
                predict_request(inputs={S.Z: np.zeros((4000, 8), np.float32)}), timeout=0.001
            )
        ),
        "message-truncated": lambda: _long_message(server),
        "message-size-client": lambda: _message_size(server),
    }


def test_every_row_has_a_scenario(base, server, tmp_path):
    assert sorted(scenarios(base, server, tmp_path)) == sorted(r.id for r in ROWS)


def test_every_row_cites_a_source():
    for r in ROWS:
        assert r.source.startswith(("serving:", "tensorflow:", "https://")), r
        assert r.code in grpc.StatusCode.__members__ or r.code == "OK", r


@pytest.mark.parametrize("row_id", [r.id for r in ROWS])
def test_the_stand_in_follows_the_reference(row_id, base, server, tmp_path):
    expected = row(row_id)
    code, details = scenarios(base, server, tmp_path)[row_id]()
    assert code == expected.code, (row_id, code, details)
    assert expected.fragment in details, (row_id, details)
    assert "Graph execution error" not in details, (row_id, details)  # a Python header the real server never sends
