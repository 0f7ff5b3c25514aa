"""The TF Serving backend: the exported signatures called over gRPC with the official `tensorflow_serving.apis`.

- Predict with a signature name for every operation; GetModelMetadata checks, before the first step, that the
  served signatures are the ones facemath needs.
- Gradients cross the wire through the `vjp` / `grad` signatures, so every loss plugin works remotely and the
  projection loop is the same code as with the embedded backend.
- Without `--model-version` / `--model-label`, the version in the first answer is pinned for the whole run, so a
  rollout never mixes versions inside one optimisation.
- Deadlines per call; retries with exponential backoff on UNAVAILABLE and DEADLINE_EXCEEDED (every call is
  idempotent); requests split to stay under the gRPC message limit and sent concurrently; TLS; float32 on the wire.
- Targets: `host:port`, `dns:///name:8500` (round-robin over the addresses DNS returns: a headless Service), or a
  comma-separated list of endpoints (round-robin across them).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.host.backend import Backend

RETRY_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED")
CLIENT_MESSAGE_LIMIT = 4 * 1024 * 1024  # a Python gRPC client's default receive limit
MESSAGE_BUDGET = int(CLIENT_MESSAGE_LIMIT * 0.8)  # room for framing and typed-field overhead
REQUEST_BUDGET = 48 * 1024 * 1024  # requests: under the 64 MiB send limit of our channels
# A server started with --enable_batching refuses a request of more rows than its max_batch_size (128 in
# serving/batching_parameters.txt; tests/serving/tfserving_reference.py: batching-max-batch-size), so no request
# is larger.
MAX_ROWS_PER_REQUEST = 128
AVAILABLE_STATE = 30  # ModelVersionStatus.State.AVAILABLE (get_model_status.proto)


class TFServingBackend(Backend):
    name = "tfserving"

    def __init__(
        self,
        target: str,
        version: int | None = None,
        label: str | None = None,
        prefix: str = "",
        timeout: float = 60.0,
        retries: int = 6,
        backoff: float = 0.5,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_server_name: str | None = None,
        in_flight: int | None = None,
        projector: bool = True,
    ):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if version is not None and label is not None:
            raise FacemathError("--model-version and --model-label: give one or the other")
        self.target, self.prefix = target, prefix
        self.requested_version, self.label = version, label
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.enable_retries", 0),
        ]  # facemath retries itself, with its own backoff and messages
        if tls_server_name:  # the name the server's certificate carries, when it is not the address's host
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        credentials = channel_credentials(tls_ca, tls_cert, tls_key)
        endpoints = [t.strip() for t in target.split(",") if t.strip()] if not target.startswith("dns:") else [target]
        if not endpoints:
            raise FacemathError(f"--server {target!r}: no endpoint given")
        self.channels = [
            grpc.secure_channel(e, credentials, options) if credentials else grpc.insecure_channel(e, options)
            for e in endpoints
        ]
        self.predict_stubs = [prediction_service_pb2_grpc.PredictionServiceStub(c) for c in self.channels]
        self.model_stubs = [model_service_pb2_grpc.ModelServiceStub(c) for c in self.channels]
        self._next = 0
        self._lock = threading.Lock()
        self._pinned: dict[str, int] = {}
        self._metadata: dict[str, dict] = {}
        self._checked: set[str] = set()
        self._served: dict[str, int] = {}  # the version each model answered with
        # Requests kept in flight per call: one per endpoint by default, so N listed replicas work N-fold; set it
        # to the replica count behind a dns:/// target.
        self.in_flight = max(1, in_flight or len(endpoints))
        self._pool = ThreadPoolExecutor(max_workers=max(4, 2 * self.in_flight))
        self.use_projector = projector  # False: always the three-request path (vjp + grad)
        self.calls = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    def describe(self) -> str:
        return f"tfserving at {self.target}"

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        for channel in self.channels:
            channel.close()

    # --- plumbing -------------------------------------------------------------------------------------------

    def _stub(self, kind: str):
        with self._lock:
            index = self._next % len(self.channels)
            self._next += 1
        return (self.predict_stubs if kind == "predict" else self.model_stubs)[index]

    def _model_name(self, model: str) -> str:
        return S.model_name(model, self.prefix)

    def _spec(self, spec, model: str, signature: str = "") -> None:
        spec.name = self._model_name(model)
        if signature:
            spec.signature_name = signature
        if self.requested_version is not None:
            spec.version.value = self.requested_version
        elif self.label is not None:
            spec.version_label = self.label
        elif model in self._pinned:
            spec.version.value = self._pinned[model]

    def _rpc(self, what: str, model: str, method: str, kind: str, request):
        """One idempotent call, retried with exponential backoff on UNAVAILABLE and DEADLINE_EXCEEDED."""
        import grpc

        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = getattr(self._stub(kind), method)(request, timeout=self.timeout)
                with self._lock:  # calls come from the thread pool too
                    self.calls += 1
                return response
            except grpc.RpcError as exc:
                code = exc.code().name if exc.code() else "UNKNOWN"
                if code in RETRY_CODES and attempt < self.retries:
                    time.sleep(delay)
                    delay = min(delay * 2, 8.0)
                    continue
                detail = " ".join((exc.details() or "").split())
                raise FacemathError(
                    f"server {self.target}, model {self._model_name(model)}: {what} failed: {code}: {detail}"
                ) from None
        raise AssertionError("unreachable")

    def _check_signatures(self, model: str) -> None:
        """GetModelMetadata once per model: the served signatures must be the ones facemath exports."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        if model in self._checked:
            return
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model)
        response = self._rpc("GetModelMetadata", model, "GetModelMetadata", "predict", request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        served = signatures.signature_def
        for name, wanted in S.SIGNATURES[model].items():
            if name not in served:
                raise FacemathError(
                    f"server {self.target}, model {self._model_name(model)} version "
                    f"{response.model_spec.version.value}: no signature {name!r}; this is not a "
                    f"facemath {model} export (served: {', '.join(sorted(served))})"
                )
            have = (sorted(served[name].inputs), sorted(served[name].outputs))
            if have != (sorted(wanted.inputs), sorted(wanted.outputs)):
                raise FacemathError(
                    f"server {self.target}, model {self._model_name(model)}: signature {name!r} has "
                    f"inputs {have[0]} and outputs {have[1]}, facemath needs {sorted(wanted.inputs)} "
                    f"and {sorted(wanted.outputs)}"
                )
        self._pin(model, response.model_spec.version.value)
        self._served[model] = int(response.model_spec.version.value)
        self._checked.add(model)

    def _pin(self, model: str, version: int) -> None:
        if self.requested_version is None and self.label is None:
            self._pinned.setdefault(model, int(version))

    def _predict(
        self, model: str, signature: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, signature)
        request.output_filter.extend(outputs or [])
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(np.ascontiguousarray(value)))
        with self._lock:
            self.bytes_sent += request.ByteSize()
        response = self._rpc(f"Predict {signature}", model, "Predict", "predict", request)
        with self._lock:
            self.bytes_received += response.ByteSize()
        self._pin(model, response.model_spec.version.value)
        return {alias: _to_numpy(proto) for alias, proto in response.outputs.items()}

    # --- the Backend interface ------------------------------------------------------------------------------

    def version(self, model: str) -> int:
        self._check_signatures(model)
        return self._served[model]

    def metadata(self, model: str) -> dict:
        if model not in self._metadata:
            self._check_signatures(model)
            answer = self._predict(model, S.METADATA, {S.METADATA_INDEX: np.zeros(1, np.float32)})
            self._metadata[model] = json.loads(answer[S.METADATA_JSON][0])
        return self._metadata[model]

    def require(self, model: str) -> None:
        self._check_signatures(model)

    def available_versions(self, model: str) -> list[int]:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self._model_name(model)
        try:
            response = self._rpc("GetModelStatus", model, "GetModelStatus", "model", request)
        except FacemathError:
            return []  # e.g. a proxy that forwards only the prediction service: predictions will tell
        return sorted(s.version for s in response.model_version_status if s.state == 30)  # 30: AVAILABLE

    def use_version(self, model: str, version: int) -> None:
        # A pin, like the one taken from the first answer; an explicit --model-version/--model-label still wins.
        self._pinned[model] = int(version)
        self._checked.discard(model)
        self._metadata.pop(model, None)

    def call(self, model, signature, inputs, outputs=None):
        self._check_signatures(model)
        inputs = {k: np.asarray(v, np.float32) for k, v in inputs.items()}
        rows = len(next(iter(inputs.values())))
        per_row = self._row_bytes(model, signature, inputs)
        step = max(1, min(MESSAGE_BUDGET // per_row, MAX_ROWS_PER_REQUEST))
        step = max(1, min(step, -(-rows // self.in_flight)))  # at least `in_flight` pieces when rows allow
        if rows <= step:
            return self._predict(model, signature, inputs, outputs)
        # Split under the message limit and keep several requests in flight (N replicas are used N-fold).
        parts = list(
            self._pool.map(
                lambda i: self._predict(model, signature, {k: v[i : i + step] for k, v in inputs.items()}, outputs),
                range(0, rows, step),
            )
        )
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _row_bytes(self, model: str, signature: str, inputs: dict[str, np.ndarray]) -> int:
        """Bytes per row, scaled so one budget serves both directions: answers must stay under the client's 4 MiB
        receive limit, requests under REQUEST_BUDGET (the server itself accepts up to 2 GiB)."""
        size = self.metadata(model)["image_size"] if signature != S.METADATA else 1
        out_floats = {
            S.DEFAULT: 3 * size * size,
            S.VJP: 3 * size * size + 512,
            S.GRAD: 3 * size * size + 1,
            S.STEP: len(S.PROJECTOR_TERMS) + 1 + 512,  # losses, total, z_grad (images are filtered out)
        }.get(signature, 3 * size * size)
        in_bytes = sum(v[0].nbytes for v in inputs.values()) if inputs else 0
        return max(in_bytes * MESSAGE_BUDGET // REQUEST_BUDGET, 4 * out_floats) + 64

    # --- one request per projection step -----------------------------------------------------------------------

    def fused_objective(self, model, terms):
        """The projector's `step` signature as the whole step objective, when the server has a projector built
        from the generator version in use and every term of the run is one of its columns; otherwise None."""
        import tensorflow as tf

        columns = _projector_columns(terms)
        if not self.use_projector or model != S.GENERATOR or columns is None or not self.has(S.PROJECTOR):
            return None
        components = self.metadata(S.PROJECTOR).get("components", {})
        if components.get(S.GENERATOR, {}).get("version") != self.version(S.GENERATOR):
            return None  # built from another generator version: its numbers would not be this run's
        weights = np.zeros(len(S.PROJECTOR_TERMS), np.float32)
        for (spec, _, _), column in zip(terms, columns, strict=True):
            weights[column] = spec.weight
        z_dim = self.metadata(S.GENERATOR)["z_dim"]

        def step(z, target, mask):
            rows = {
                S.Z: z,
                S.TARGET: target,
                S.MASK: mask,
                S.LOSS_WEIGHTS: np.broadcast_to(weights, (len(z), len(weights))),
            }
            out = self.batched(S.PROJECTOR, S.STEP, rows, [S.LOSSES, S.TOTAL, S.Z_GRAD])
            return out[S.LOSSES], out[S.TOTAL], out[S.Z_GRAD]

        def objective(z, target, mask):
            @tf.custom_gradient
            def run(z):
                losses, total, z_grad = tf.numpy_function(
                    step, [z, target, mask], [tf.float32, tf.float32, tf.float32], stateful=False
                )
                losses = tf.ensure_shape(losses, [None, len(S.PROJECTOR_TERMS)])
                total, z_grad = tf.ensure_shape(total, [None]), tf.ensure_shape(z_grad, [None, z_dim])

                def grad(d_total, d_losses):
                    # The step's objective reaches z only through the weighted total (the values are reported).
                    return d_total[:, None] * z_grad

                return (total, losses), grad

            total, losses = run(z)
            values = {spec.name: tf.stop_gradient(losses[:, c]) for (spec, _, _), c in zip(terms, columns, strict=True)}
            return values, total

        return objective


def _to_numpy(proto) -> np.ndarray:
    """Both encodings, quickly: tensor_content is a buffer view; typed float_val fields are read as one array."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return tf.make_ndarray(proto)
    if proto.dtype == types_pb2.DT_FLOAT:
        return np.array(proto.float_val, np.float32).reshape(shape)  # one C-level copy of the packed field
    return tf.make_ndarray(proto)


def _projector_columns(terms) -> list[int] | None:
    """The projector column of each (spec, component, params) term, or None if any term is not one of them
    (a third-party loss, other parameters)."""
    columns = []
    for spec, component, params in terms:
        if getattr(component.function, "__module__", "") != "facemath_plugins.losses":
            return None
        found = [i for i, (_, term, fixed) in enumerate(S.PROJECTOR_TERMS) if term == spec.name and fixed == params]
        if not found:
            return None
        columns.append(found[0])
    return columns


def channel_credentials(tls_ca: str | None, tls_cert: str | None, tls_key: str | None, option: str = "--tls-ca"):
    """gRPC channel credentials for TLS (a CA to verify the server) and mutual TLS (a client certificate and key);
    None for a plaintext channel."""
    import grpc

    if not (tls_ca or tls_cert or tls_key):
        return None
    if bool(tls_cert) != bool(tls_key):
        raise FacemathError(f"{option}: mutual TLS needs both --tls-cert and --tls-key")

    def read(path):
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise FacemathError(f"{option}: cannot read {path} ({exc.strerror})") from None

    return grpc.ssl_channel_credentials(read(tls_ca), read(tls_key), read(tls_cert))


def open_channel(
    target: str, tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None, option="--server"
):
    """A gRPC channel to `target`, TLS when any TLS file is given (usable as a context manager)."""
    import grpc

    credentials = channel_credentials(tls_ca, tls_cert, tls_key, option)
    return grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)


def wait_for_versions(channel, target: str, wanted: dict[str, list[int]], timeout: float = 60.0) -> None:
    """Poll GetModelStatus until every model has each listed version (or, for an empty list, any version)
    AVAILABLE."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    deadline = time.monotonic() + timeout
    pending = sorted(wanted)
    last = ""
    while pending and time.monotonic() < deadline:
        name = pending[0]
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        try:
            response = stub.GetModelStatus(request, timeout=5)
            available = {s.version for s in response.model_version_status if s.state == AVAILABLE_STATE}
            if (set(wanted[name]) <= available) if wanted[name] else available:
                pending.pop(0)
                continue
            last = f"{name}: states {sorted((s.version, s.state) for s in response.model_version_status)}"
        except grpc.RpcError as exc:
            code = exc.code().name if exc.code() else "UNKNOWN"
            if code == "UNAVAILABLE" and "ssl" in (exc.details() or "").lower():
                raise FacemathError(f"server {target}: TLS handshake failed: {exc.details()}") from None
            last = f"{name}: {code}: {' '.join((exc.details() or '').split())}"
        time.sleep(0.5)
    if pending:
        raise FacemathError(f"server {target}: models not AVAILABLE after {timeout:.0f} s ({last})")


def wait_until_available(
    target: str,
    models: list[str],
    timeout: float = 60.0,
    version: int | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Poll GetModelStatus until every model (at `version`, or any) is AVAILABLE; over TLS when TLS files are given."""
    with open_channel(target, tls_ca, tls_cert, tls_key) as channel:
        wait_for_versions(channel, target, {m: [version] if version is not None else [] for m in models}, timeout)
