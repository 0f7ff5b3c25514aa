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

import os
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facemath_core.base.errors import FacemathError
from facemath_core.models.layout import existing_versions
from facemath_core.serving.model_config import ModelEntry, entry_from_proto, read_config_proto
from facemath_core.serving.session_model import SessionModel

AVAILABLE, END = 30, 50
MAX_MESSAGE = 2**31 - 1  # the real server accepts and sends messages up to 2 GiB
MAX_ERROR = 1024  # the real server cuts error messages


class ServingError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        # ToGRPCStatus (grpc_status_util.cc) cuts long messages and says so.
        self.message = message[:MAX_ERROR] + "...TRUNCATED" if len(message) > MAX_ERROR else message


@dataclass
class Servable:
    name: str
    version: int
    model: SessionModel


class ServableStore:
    """The loaded model versions, by name and version, with their labels.

    Reload follows ServerCore::ReloadConfig (server_core.cc, cited at tag 2.19.1 / commit 9d981c5):
    1. the list as a whole: duplicate names, relative base paths (ValidateModelConfigList, :470 / :505);
    2. no model already configured changes platform (ValidateNoModelsChangePlatforms, :474 / :509),
       checked against the config stored by the last reload, even a refused one;
    3. the new config is STORED (config_ = new_config, :477 / :512) before
    4. the labels are checked against the versions AVAILABLE now (UpdateModelVersionLabelMap, :479 / :514): a
       refused label leaves the new config stored and nothing loaded, so a polled file that adds a version and
       moves a label onto it in one step fails the same way on every poll and the version never loads;
    5. the platforms of the whole list (CreateStoragePathRoutes, :345 / :374), then versions are loaded and
       unloaded, and a model new to the config is awaited (WaitUntilModelsAvailable, :411 / :440): one whose
       SavedModel fails is reported, one with no version at all (a base_path that does not exist) is waited for
       with no time limit (servable_state_waiter_timeout = InfiniteDuration, server_core.h:218), holding the
       reload lock, so the caller's deadline passes first and later reloads queue behind it
       (tensorflow/serving#1565, #1447).
    """

    def __init__(
        self,
        entries: list[ModelEntry],
        allow_version_labels_for_unavailable_models: bool = False,
        file_system_poll_wait_seconds: float = 1.0,
    ):
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._servables: dict[str, dict[int, Servable]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._names: set[str] = set()  # the models of the storage path source's config (loaded, or awaited)
        self._config: list[ModelEntry] | None = None  # config_: the last config a reload got past step 2 with
        self.allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self.file_system_poll_wait_seconds = max(0.05, file_system_poll_wait_seconds)
        self.closed = threading.Event()
        # At start-up the real server would wait for a model with no version too (its gRPC port opens only after
        # every model is AVAILABLE); the stand-in starts without it, so a development server never hangs mutely.
        self.reload(entries, await_new_models=False)

    def close(self) -> None:
        """The server is stopping: a reload still waiting for a model gives up."""
        self.closed.set()

    def reload(self, entries: list[ModelEntry], await_new_models: bool = True) -> None:
        with self._reload_lock:
            _validate_config_list(entries)
            if self._config is not None:
                _validate_no_platform_changes(self._config, entries)
            self._config = list(entries)
            labels = self._label_map(entries)
            with self._lock:
                self._labels = labels
            for entry in entries:
                _platform(entry)
                if entry.platform != "tensorflow":
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Model {entry.name} requests unsupported platform {entry.platform}",
                    )
            new_models = {e.name for e in entries} - self._names
            loaded: dict[str, dict[int, Servable]] = {}
            failed: dict[str, str] = {}
            for entry in entries:
                current = self._servables.get(entry.name, {})
                loaded[entry.name] = {}
                for version in entry.served_versions(existing_versions(Path(entry.base_path))):
                    if version in current:
                        loaded[entry.name][version] = current[version]
                        continue
                    servable, error = self._load(entry, version)
                    if servable is not None:
                        loaded[entry.name][version] = servable
                    elif entry.name in new_models:  # only models new to this config are awaited
                        failed[entry.name] = failed.get(entry.name, "") + error
            self._swap(loaded, {e.name for e in entries})
            awaited = [e for e in entries if e.name in new_models and not loaded[e.name] and e.name not in failed]
            for entry in awaited if await_new_models else []:
                self._await_first_version(entry, failed)
            if failed:
                raise ServingError(
                    grpc.StatusCode.UNKNOWN,
                    f"{len(failed)} model(s) did not become available: {{{''.join(failed.values())}}}",
                )

    def _load(self, entry: ModelEntry, version: int) -> tuple[Servable | None, str]:
        try:
            return Servable(entry.name, version, SessionModel(Path(entry.base_path) / str(version))), ""
        except Exception as exc:  # noqa: BLE001 - a version that fails to load is reported, like the real server
            return None, f"{{{{name: {entry.name} version: {version}}} due to error: {exc}}}, "

    def _swap(self, loaded: dict[str, dict[int, Servable]], names: set[str]) -> None:
        with self._lock:
            old = self._servables
            self._servables = loaded
            self._names = names
        for name, versions in old.items():
            for version, servable in versions.items():
                if loaded.get(name, {}).get(version) is not servable:
                    servable.model.close()

    def _await_first_version(self, entry: ModelEntry, failed: dict[str, str]) -> None:
        """A new model with no version on disk: the file system source finds none ("Could not find base path" or
        "No versions of servable ... found"), and the reload waits for one with no deadline, re-reading the base
        path every --file_system_poll_wait_seconds, until a version appears (then it loads) or the server stops."""
        while not self.closed.wait(self.file_system_poll_wait_seconds):
            versions = entry.served_versions(existing_versions(Path(entry.base_path)))
            if not versions:
                continue
            servable, error = self._load(entry, versions[-1])
            if servable is None:
                failed[entry.name] = error
                return
            with self._lock:
                self._servables.setdefault(entry.name, {})[servable.version] = servable
            return
        raise ServingError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")

    def _label_map(self, entries: list[ModelEntry]) -> dict[str, dict[str, int]]:
        """ServerCore::UpdateModelVersionLabelMap: a label may point only at a version that is AVAILABLE now,
        unless the server allows labels for unavailable models and the label is not yet assigned elsewhere."""
        labels: dict[str, dict[str, int]] = {}
        with self._lock:
            available = {name: set(versions) for name, versions in self._servables.items()}
            assigned = {name: dict(m) for name, m in self._labels.items()}
        for entry in entries:
            for label, version in entry.labels.items():
                existing = assigned.get(entry.name, {}).get(label)
                allowed = self.allow_unavailable_labels and (existing is None or existing == version)
                if not allowed and version not in available.get(entry.name, set()):
                    raise ServingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {entry.name}, which "
                        f"is not currently available for inference",
                    )
                labels.setdefault(entry.name, {})[label] = version
        return labels

    def resolve(self, spec) -> Servable:
        name = spec.name
        if not name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
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

    def labels(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._labels.get(name, {}))


def _validate_config_list(entries: list[ModelEntry]) -> None:
    """ValidateModelConfigList (server_core.cc): checked before anything is stored, loaded or unloaded."""
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Illegal to list model {entry.name} multiple times in config list"
            )
        seen.add(entry.name)
    for entry in entries:
        if "://" not in entry.base_path and not entry.base_path.startswith("/"):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expected model {entry.name} to have an absolute path or URI; got base_path()={entry.base_path}",
            )


def _platform(entry: ModelEntry) -> str:
    """GetPlatform (server_core.cc)."""
    if not entry.platform:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {entry.name}",
        )
    return entry.platform


def _validate_no_platform_changes(old: list[ModelEntry], new: list[ModelEntry]) -> None:
    """ValidateNoModelsChangePlatforms (server_core.cc): a model in both configs keeps its platform."""
    before = {entry.name: _platform(entry) for entry in old}
    for entry in new:
        if entry.name in before and _platform(entry) != before[entry.name]:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Illegal to change a model's platform. For model {entry.name} platform was {before[entry.name]} "
                f"and new platform requested is {entry.platform}",
            )


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
    def __init__(self, store: ServableStore, tensor_content: bool = False, max_batch_size: int | None = None):
        self.store = store
        self.tensor_content = tensor_content
        # With --enable_batching: the batch queue's input_batch_size_limit (bundle_factory_util.h GetQueueOptions).
        self.max_batch_size = max_batch_size

    def _servable(self, request):
        _require_spec(request)
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
                f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sorted(sent))}}}) "
                f"!= len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}.",
            )
        # GetInputValues (tensorflow/cc/saved_model/util.cc, called at predict_util.cc:129): the signature's
        # inputs in turn (a proto map: sorted here), each looked up in the request, then parsed.
        feeds = {}
        for alias in sorted(signature.inputs):
            if alias not in request.inputs:
                feed_name = signature.inputs[alias].name
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Signature input alias: {alias}(feed name: {feed_name}) not found in request and no default "
                    f"value provided. Inputs expected to be in the request {{{','.join(sorted(request.inputs))}}}, "
                    "or default input alias set: ",
                )
            try:
                feeds[alias] = tf.make_ndarray(request.inputs[alias])
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
                    f"set {{{','.join(sorted(signature.outputs))}}}.",
                )
        if self.max_batch_size is not None:
            _check_batch(feeds, self.max_batch_size)
        # Session::Run checks each feed's dtype against the graph's (the executor's feed check).
        for index, alias in enumerate(sorted(feeds)):
            proto = request.inputs[alias]
            if proto.dtype != signature.inputs[alias].dtype:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Expects arg[{index}] to be {_dtype_name(signature.inputs[alias].dtype)} but "
                    f"{_dtype_name(proto.dtype)} is provided",
                )
        remaining = context.time_remaining() if context is not None else None
        try:
            values = servable.model.run(signature_name, feeds, outputs, timeout=remaining)
        except tf.errors.DeadlineExceededError:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except tf.errors.OpError as exc:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, _status_message(exc.message)) from None
        except ValueError as exc:  # a shape the graph cannot take: the real server fails inside the ops the same way
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, _status_message(str(exc))) from None
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

        # get_model_metadata_impl.cc: the spec, then the fields, and only then the model is looked up.
        _require_spec(request)
        if not request.metadata_field:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field_name in request.metadata_field:
            if field_name != "signature_def":
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field_name} is not supported")
        servable = self.store.resolve(request.model_spec)
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

    # Classify / Regress / MultiInference: facemath exports predict signatures only; the real server checks a
    # signature's shape for these calls (classifier.cc, regressor.cc, multi_inference.cc) and refuses ours with
    # INVALID_ARGUMENT before running anything. The same checks, in the same order:

    def classify(self, request, context):
        servable = self._servable(request)
        signature = _signature_for(servable, request.model_spec.signature_name)
        _check_classification(signature)
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "tf.Example input is not supported by the stand-in")

    def regress(self, request, context):
        servable = self._servable(request)
        signature = _signature_for(servable, request.model_spec.signature_name)
        _check_regression(signature)
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "tf.Example input is not supported by the stand-in")

    def multi_inference(self, request, context):
        # RunMultiInferenceWithServerCore (multi_inference_helper.cc:28-33, 52, at tag 2.19.1 and commit 9d981c5)
        # looks the servable up by the FIRST task's model spec (or an empty one) before TensorFlowMultiInferenceRunner
        # checks the tasks (multi_inference.cc:42-84).
        from tensorflow_serving.apis import model_pb2

        first = request.tasks[0].model_spec if request.tasks and request.tasks[0].HasField("model_spec") else None
        self.store.resolve(first if first is not None else model_pb2.ModelSpec())
        names, seen = set(), set()
        for task in request.tasks:
            if not task.model_spec.name:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Found ModelSpec with an empty model name.")
            names.add(task.model_spec.name)
            if len(names) > 1:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
                )
        for task in request.tasks:
            servable = self.store.resolve(task.model_spec)
            key = task.model_spec.signature_name or "serving_default"
            if key in seen:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Duplicate evaluation of signature: {key}")
            seen.add(key)
            if key not in servable.model.signature_defs:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Requested signature not found in model graph: {key}"
                )
            signature = servable.model.signature_defs[key]
            if task.method_name == "tensorflow/serving/classify":
                _check_classification(signature)
            elif task.method_name == "tensorflow/serving/regress":
                _check_regression(signature)
            else:
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}"
                )
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "tf.Example input is not supported by the stand-in")


def _status_message(message: str) -> str:
    """The C++ status message a TensorFlow op error carries, as the real server sends it: without the
    "Graph execution error:" header (and the Python stack of where the node was defined) that the Python session
    puts in front of it."""
    lines = message.splitlines()
    if lines and lines[0].strip() == "Graph execution error:":
        lines = lines[1:]
        detected = next((i for i, line in enumerate(lines) if line.startswith("Detected at node")), None)
        if detected is not None:  # "Detected at node ... defined at (most recent call last): <frames>" then the error
            rest = lines[detected + 1 :]
            start = next((i for i, line in enumerate(rest) if line and not line.startswith((" ", "\t"))), 0)
            lines = rest[start:]
    return " ".join(" ".join(lines).split())


def _check_batch(feeds: dict[str, np.ndarray], max_batch_size: int) -> None:
    """With --enable_batching, before a request is queued: ComputeTensorBatchSize (batching_util.h:82-110, at tag
    2.19.1 and commit 9d981c5; called from BatchingSession::ComputeInputSize, batching_session.cc:443, 469-475),
    then the queue's input_batch_size_limit (= max_batch_size, bundle_factory_util.h:111-113)."""
    if not feeds:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() must have at least one input tensor")
    sizes = set()
    for value in feeds.values():
        if np.ndim(value) == 0:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() input tensors must have at least one dimension"
            )
        sizes.add(len(value))
    if len(sizes) > 1:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() input tensors must have equal 0th-dimension size"
        )
    rows = sizes.pop()
    if rows > max_batch_size:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Task size {rows} is larger than maximum input batch size {max_batch_size}",
        )


def _require_spec(request) -> None:
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


def _signature_for(servable: Servable, name: str):
    key = name or "serving_default"
    if key not in servable.model.signature_defs:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"No signature was found with the name: {key}")
    return servable.model.signature_defs[key]


def _check_classification(signature) -> None:
    """PreProcessClassification (classifier.cc), without --enable_signature_method_name_check (off by default)."""
    if len(signature.inputs) != 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if "inputs" not in signature.inputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"No classification inputs found in SignatureDef: {signature}"
        )
    if "classes" not in signature.outputs and "scores" not in signature.outputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            'Expected classification signature outputs to contain at least one of "classes" or "scores". '
            f"Signature was: {signature}",
        )


def _check_regression(signature) -> None:
    """PreProcessRegression (regressor.cc)."""
    if len(signature.inputs) != 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"No regression inputs found in SignatureDef: {signature}")
    if "outputs" not in signature.outputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"No regression outputs found in SignatureDef: {signature}"
        )


class ModelService:
    def __init__(self, store: ServableStore):
        self.store = store

    def get_model_status(self, request, context):
        from tensorflow_serving.apis import get_model_status_pb2

        _require_spec(request)  # get_model_status_impl.cc
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

        if request.config.WhichOneof("config") != "model_config_list":  # model_service_impl.cc
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only ModelConfigList is "
                "currently supported",
            )
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


class StandIn:
    """The running stand-in: the gRPC server (its methods are this object's), the store of models, and the
    health service when enabled. `stop` also ends a reload that is still waiting for a model."""

    def __init__(self, server, store: ServableStore, health=None):
        self._server, self.store, self.health = server, store, health

    def stop(self, grace):
        self.store.close()
        return self._server.stop(grace)

    def __getattr__(self, name):
        return getattr(self._server, name)


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """tensorflow_model_server --grpc_channel_arguments: "key=value,key=value" (parseGrpcChannelArgs, server.cc:99-110
    at tag 2.19.1, :101-112 at commit 9d981c5); a value that parses as a 32-bit int is passed as an int (the loop at
    :398-408 / :400-410). A pair without "=" is refused here (the real server would index past the end)."""
    arguments: list[tuple[str, int | str]] = []
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{item!r} is not key=value")
        try:
            number = int(value)
        except ValueError:
            arguments.append((key, value))
            continue
        arguments.append((key, number) if -(2**31) <= number < 2**31 else (key, value))
    return arguments


def build_server(
    entries: list[ModelEntry],
    host: str = "127.0.0.1",
    port: int = 8500,
    workers: int = 8,
    tensor_content: bool = False,
    credentials=None,
    allow_version_labels_for_unavailable_models: bool = False,
    max_batch_size: int | None = None,
    channel_arguments: list[tuple[str, int | str]] = (),
    health_check: bool = False,
    file_system_poll_wait_seconds: float = 1.0,
):
    """A started stand-in (`StandIn`), the port it listens on (port 0: an ephemeral one) and its store.

    `max_batch_size`: what --enable_batching with a batching parameters file sets (None: no batching).
    `channel_arguments`: --grpc_channel_arguments (e.g. grpc.max_connection_age_ms, so that clients re-resolve
    and reach replicas added later). `health_check`: --enable_grpc_healthcheck_service, the standard
    grpc.health.v1.Health service with the statuses server.cc sets (:413-421 at 2.19.1, :415-423 at 9d981c5): the
    server as a whole (""), "ModelService" and "PredictionService" SERVING."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    store = ServableStore(entries, allow_version_labels_for_unavailable_models, file_system_poll_wait_seconds)
    predictions = PredictionService(store, tensor_content, max_batch_size)
    models = ModelService(store)

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        Predict = staticmethod(_grpc_method(predictions.predict))
        GetModelMetadata = staticmethod(_grpc_method(predictions.get_model_metadata))
        Classify = staticmethod(_grpc_method(predictions.classify))
        Regress = staticmethod(_grpc_method(predictions.regress))
        MultiInference = staticmethod(_grpc_method(predictions.multi_inference))

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        GetModelStatus = staticmethod(_grpc_method(models.get_model_status))
        HandleReloadConfigRequest = staticmethod(_grpc_method(models.handle_reload_config_request))

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
            *channel_arguments,
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)
    health = None
    if health_check:
        health = grpc_health.HealthServicer()
        for service in ("", "ModelService", "PredictionService"):
            health.set(service, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return StandIn(server, store, health), bound, store


class ConfigPoller(threading.Thread):
    """--model_config_file_poll_wait_seconds: Server::PollFilesystemAndReloadConfig (server.cc:163-178 at 2.19.1,
    :165-180 at 9d981c5), run by a
    PeriodicFunction: every period the file is parsed and handed to ReloadConfig, changed or not, so a refused
    config is refused again on every poll; a file that cannot be parsed is logged and skipped. Log lines say what
    the real server's say."""

    def __init__(self, store: ServableStore, path: Path, every: float, log=None):
        super().__init__(daemon=True, name="Server_fs_model_config_poll_thread")
        self.store, self.path, self.every = store, Path(path), every
        self.log = log or (lambda line: None)
        self.stop = threading.Event()
        self._last_ok: tuple[bytes, str] | None = None

    def run(self) -> None:
        while not self.stop.wait(self.every) and not self.store.closed.is_set():
            self.poll()

    def poll(self) -> None:
        try:
            config = read_config_proto(self.path, "--model_config_file")
            entries = [entry_from_proto(c) for c in config.model_config_list.config]
        except FacemathError as exc:
            self.log(f"Failed to read ModelServerConfig file: {exc}")
            return
        try:
            self.store.reload(entries)
        except ServingError as exc:
            self._last_ok = None
            self.log(f"PollFilesystemAndReloadConfig failed to ReloadConfig: {exc.message}")
            return
        state = (self.path.read_bytes() if self.path.exists() else b"", repr(self._state(entries)))
        if state != self._last_ok:
            self._last_ok = state
            self.log(f"Finished reloading config {self.path}: {self._summary(entries)}")

    def _state(self, entries):
        return [(e.name, self.store.versions(e.name), sorted(self.store.labels(e.name).items())) for e in entries]

    def _summary(self, entries) -> str:
        parts = []
        for name, versions, labels in self._state(entries):
            labelled = ", ".join(f"{k}={v}" for k, v in labels)
            parts.append(f"{name} {versions}" + (f" ({labelled})" if labelled else ""))
        return "; ".join(parts)


def start_subprocess(models: str | Path | None = None, port: int = 0, args: list[str] | None = None, env=None):
    """Run `facemath serve --models MODELS` (or `facemath serve ARGS`) in a child process, for tests and
    benchmarks; returns the process and its "127.0.0.1:PORT" once it listens."""
    import subprocess
    import sys
    import tempfile

    command = list(args) if args is not None else ["--models", str(models), "--port", str(port)]
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a long-running server must never block on stderr
    process = subprocess.Popen(
        [sys.executable, "-c", "from facemath_core.cli import main; main()", "serve", *command],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    line = process.stdout.readline().strip()
    if not line.startswith("listening on"):
        process.kill()
        process.wait()
        log.seek(0)
        last = [x for x in log.read().splitlines() if x.strip()][-1:] or ["(no output)"]
        raise RuntimeError(f"the stand-in server did not start: {last[0]}")
    process.log = log  # what it wrote on stderr so far: read_log(process)
    return process, line.split()[-1]


def read_log(process) -> str:
    """Everything a `start_subprocess` server has written on stderr so far (its reloads and refusals)."""
    fd = process.log.fileno()  # shared with the child: pread, so its write position never moves
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")
