"""A development stand-in for tensorflow_model_server, speaking the same gRPC API.

tensorflow_model_server cannot be installed where facemath is developed and tested, so this server lets the
client, the deployment command and the tests talk to something real over a socket. Production runs the real
server (docs/deploy.md). Where the two could differ, this one follows TF Serving's sources
(../shared/tfserving-fidelity.md): it runs signatures through the TF1 SavedModel loader and `Session.run` (never
the Python model code), applies version policies and labels, answers with the real server's status codes and
messages, checks dtypes strictly, echoes the resolved model spec, answers with typed `float_val` fields unless
told to use `tensor_content`, and turns the client's deadline into the run timeout.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from facemath_core.model_config import ModelEntry
from facemath_core.model_layout import existing_versions
from facemath_core.session_model import SessionModel

AVAILABLE, END = 30, 50
MAX_MESSAGE = 2**31 - 1  # the real server accepts and sends messages up to 2 GiB
MAX_ERROR = 1024  # the real server cuts error messages


class ServingError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message[:MAX_ERROR]


@dataclass
class Servable:
    name: str
    version: int
    model: SessionModel


class ServableStore:
    """The loaded model versions, by name and version, with their labels; replaced whole on reload."""

    def __init__(self, entries: list[ModelEntry]):
        self._lock = threading.Lock()
        self._servables: dict[str, dict[int, Servable]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self.reload(entries)

    def reload(self, entries: list[ModelEntry]) -> None:
        loaded: dict[str, dict[int, Servable]] = {}
        for entry in entries:
            versions = entry.served_versions(existing_versions(Path(entry.base_path)))
            current = self._servables.get(entry.name, {})
            loaded[entry.name] = {
                v: current.get(v) or Servable(entry.name, v, SessionModel(Path(entry.base_path) / str(v)))
                for v in versions
            }
            for version in entry.labels.values():
                if version not in loaded[entry.name]:
                    raise ServingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {entry.name}, which "
                        f"is not currently available for inference",
                    )
        with self._lock:
            old = self._servables
            self._servables = loaded
            self._labels = {e.name: dict(e.labels) for e in entries}
        for name, versions in old.items():
            for version, servable in versions.items():
                if loaded.get(name, {}).get(version) is not servable:
                    servable.model.close()

    def resolve(self, spec) -> Servable:
        name = spec.name
        with self._lock:
            versions = self._servables.get(name, {})
            labels = self._labels.get(name, {})
        if spec.HasField("version"):
            wanted = spec.version.value
            if wanted not in versions:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {wanted})"
                )
            return versions[wanted]
        if spec.version_label:
            if spec.version_label not in labels:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {spec.version_label}"
                )
            wanted = labels[spec.version_label]
            if wanted not in versions:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {wanted})"
                )
            return versions[wanted]
        if not versions:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        return versions[max(versions)]

    def versions(self, name: str) -> list[int]:
        with self._lock:
            return sorted(self._servables.get(name, {}))


def _dtype_name(dtype_enum: int) -> str:
    import tensorflow as tf

    return tf.dtypes.as_dtype(dtype_enum).name.replace("float32", "float").replace("float64", "double")


def typed_tensor_proto(array: np.ndarray, tensor_content: bool):
    """An answer tensor: typed repeated fields (float_val, ...) as the real server sends by default."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    if tensor_content or array.dtype.kind not in "fiubSO":
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape]
        )
    )
    if array.dtype.kind in "SO":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(bytes(v) if not isinstance(v, str) else v.encode() for v in array.ravel())
    elif array.dtype == np.float32:
        proto.dtype = types_pb2.DT_FLOAT
        # Append the packed field's wire bytes (tag of float_val = field 5, length, little-endian floats): the same
        # bytes the real server's C++ writes, without a slow element-by-element copy in Python.
        payload = np.ascontiguousarray(array, "<f4").tobytes()
        proto.MergeFromString(b"\x2a" + _varint(len(payload)) + payload)
    elif array.dtype == np.float64:
        proto.dtype = types_pb2.DT_DOUBLE
        proto.double_val.extend(array.ravel().tolist())
    elif array.dtype == np.int64:
        proto.dtype = types_pb2.DT_INT64
        proto.int64_val.extend(array.ravel().tolist())
    else:
        return tf.make_tensor_proto(array)
    return proto


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class PredictionService:
    def __init__(self, store: ServableStore, tensor_content: bool = False):
        self.store = store
        self.tensor_content = tensor_content

    def _servable(self, request):
        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.model_spec.name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        return self.store.resolve(request.model_spec)

    def predict(self, request, context):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        servable = self._servable(request)
        signature_name = request.model_spec.signature_name or "serving_default"
        signature = servable.model.signature_defs.get(signature_name)
        if signature is None or signature_name.startswith("__"):
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.'
            )
        sent, expected = set(request.inputs), set(signature.inputs)
        if len(sent) != len(expected):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input size does not match signature: {len(sent)}!={len(expected)} len({{{', '.join(sorted(sent))}}}) "
                f"!= len({{{', '.join(sorted(expected))}}}). Sent extra: {{{', '.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{', '.join(sorted(expected - sent))}}}.",
            )
        feeds = {}
        for index, alias in enumerate(sorted(request.inputs)):
            if alias not in signature.inputs:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input tensor alias not found in signature: {alias}. Inputs expected to be in the "
                    f"set {{{', '.join(sorted(expected))}}}.",
                )
            proto = request.inputs[alias]
            if proto.dtype != signature.inputs[alias].dtype:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Expects arg[{index}] to be {_dtype_name(signature.inputs[alias].dtype)} but "
                    f"{_dtype_name(proto.dtype)} is provided",
                )
            try:
                feeds[alias] = tf.make_ndarray(proto)
            except Exception:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}") from None
        outputs = list(request.output_filter) or sorted(signature.outputs)
        if len(set(outputs)) != len(outputs):
            duplicate = next(o for o in outputs if outputs.count(o) > 1)
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {duplicate}")
        for alias in outputs:
            if alias not in signature.outputs:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                    f"set {{{', '.join(sorted(signature.outputs))}}}.",
                )
        remaining = context.time_remaining() if context is not None else None
        try:
            values = servable.model.run(signature_name, feeds, outputs, timeout=remaining)
        except tf.errors.DeadlineExceededError:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except tf.errors.OpError as exc:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, " ".join(exc.message.split())) from None
        except ValueError as exc:  # a shape the graph cannot take: the real server fails inside the ops the same way
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, " ".join(str(exc).split())) from None
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for alias, value in values.items():
            response.outputs[alias].CopyFrom(typed_tensor_proto(np.asarray(value), self.tensor_content))
        return response

    def get_model_metadata(self, request, context):
        from google.protobuf import any_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2

        servable = self._servable(request)
        if not request.metadata_field:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field_name in request.metadata_field:
            if field_name != "signature_def":
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field_name} is not supported")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, value in servable.model.signature_defs.items():
            signatures.signature_def[key].CopyFrom(value)
        packed = any_pb2.Any()
        packed.Pack(signatures)
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelService:
    def __init__(self, store: ServableStore):
        self.store = store

    def get_model_status(self, request, context):
        from tensorflow_serving.apis import get_model_status_pb2

        name = request.model_spec.name
        versions = self.store.versions(name)
        if not versions:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        if request.model_spec.HasField("version"):
            wanted = request.model_spec.version.value
            if wanted not in versions:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {wanted} of model {name}")
            versions = [wanted]
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            status = response.model_version_status.add()
            status.version = version
            status.state = AVAILABLE
        return response

    def handle_reload_config_request(self, request, context):
        from tensorflow_serving.apis import model_management_pb2

        from facemath_core.model_config import entry_from_proto

        entries = [entry_from_proto(c) for c in request.config.model_config_list.config]
        self.store.reload(entries)
        return model_management_pb2.ReloadConfigResponse()


def _grpc_method(method):
    def handler(request, context):
        try:
            return method(request, context)
        except ServingError as exc:
            context.abort(exc.code, exc.message)

    return handler


def build_server(
    entries: list[ModelEntry],
    host: str = "127.0.0.1",
    port: int = 8500,
    workers: int = 8,
    tensor_content: bool = False,
    credentials=None,
):
    """A started gRPC server and the port it listens on (port 0: an ephemeral one)."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    store = ServableStore(entries)
    predictions = PredictionService(store, tensor_content)
    models = ModelService(store)

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        Predict = staticmethod(_grpc_method(predictions.predict))
        GetModelMetadata = staticmethod(_grpc_method(predictions.get_model_metadata))

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        GetModelStatus = staticmethod(_grpc_method(models.get_model_status))
        HandleReloadConfigRequest = staticmethod(_grpc_method(models.handle_reload_config_request))

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server, bound, store


def start_subprocess(models: str | Path, port: int = 0):
    """Run `facemath serve --models MODELS` in a child process (for tests and benchmarks); returns the process
    and its "127.0.0.1:PORT" once it listens."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from facemath_core.cli import main; main()",
            "serve",
            "--models",
            str(models),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline().strip()
    if not line.startswith("listening on"):
        process.kill()
        raise RuntimeError(f"the stand-in server for {models} did not start")
    return process, line.split()[-1]
