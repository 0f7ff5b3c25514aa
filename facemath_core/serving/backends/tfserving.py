"""The TF Serving backend: the exported signatures called over gRPC with the official `tensorflow_serving.apis`.

- Predict with a signature name for every operation; GetModelMetadata checks, before the first step, that the
  served signatures are the ones facemath needs.
- Gradients cross the wire through the `vjp` / `grad` signatures, so every loss plugin works remotely and the
  projection loop is the same code as with the embedded backend.
- Without `--model-version` / `--model-label`, the version in the first answer is pinned for the whole run, so a
  rollout never mixes versions inside one optimisation.
- Deadlines per call; retries with exponential backoff on UNAVAILABLE and DEADLINE_EXCEEDED (every call is
  idempotent); requests split to stay under the gRPC message limit and sent concurrently; TLS; float32 on the wire,
  except a projection's targets and masks, which go as uint8 to a projector that takes them (version 3 on).
- Targets: `host:port`, `dns:///name:8500` (round-robin over the addresses DNS returns: a headless Service; the
  name is resolved again whenever a server closes a connection, so replicas added later get traffic), or a
  comma-separated list of endpoints (round-robin across them).
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.data.images import to_unit
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
DNS_MIN_INTERVAL_MS = 2000


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
            ("grpc.enable_retries", 0),  # facemath retries itself, with its own backoff and messages
            # A dns:/// target is resolved again whenever a connection closes: the servers close each one after
            # grpc.max_connection_age_ms (serving/kubernetes/deployment.yaml), so pods added to a headless Service
            # get traffic. gRPC spaces re-resolutions at least this far apart (default 30 s).
            ("grpc.dns_min_time_between_resolutions_ms", DNS_MIN_INTERVAL_MS),
        ]
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
        self._signatures: dict[str, set[str]] = {}  # the signatures each model's served version has
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
                tls = tls_failure(exc.details() or "") if code == "UNAVAILABLE" else None
                if tls is not None:  # a handshake that failed fails again: no retries, one line
                    raise FacemathError(
                        f"server {self.target}, model {self._model_name(model)}: {what} failed: UNAVAILABLE: {tls}"
                    ) from None
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
        optional = S.OPTIONAL_SIGNATURES.get(model, {})
        for name, wanted in {**S.SIGNATURES[model], **optional}.items():
            if name not in served and name in optional:
                continue  # an older export: the client uses its other signatures
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
        self._signatures[model] = set(served)
        self._checked.add(model)

    def serves(self, model: str, signature: str) -> bool:
        """Whether the served version of `model` has `signature` (an optional one, of newer exports)."""
        self._check_signatures(model)
        return signature in self._signatures.get(model, set())

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
        # float32, except what a signature takes as 8-bit (the projector's pixels and known-pixel mask).
        inputs = {k: v if _is_uint8(v) else np.asarray(v, np.float32) for k, v in inputs.items()}
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
            S.STEP_PIXELS: len(S.PROJECTOR_TERMS) + 1 + 512,
            S.STEP_PIXELS_UNMASKED: len(S.PROJECTOR_TERMS) + 1 + 512,
        }.get(signature, 3 * size * size)
        in_bytes = sum(v[0].nbytes for v in inputs.values()) if inputs else 0
        return max(in_bytes * MESSAGE_BUDGET // REQUEST_BUDGET, 4 * out_floats) + 64

    # --- one request per projection step -----------------------------------------------------------------------

    def fused_objective(self, model, terms):
        """The projector's step as the whole step objective, when the server has a projector built from the
        generator version in use and every term of the run is one of its columns; otherwise None."""
        columns = _projector_columns(terms)
        if not self.use_projector or model != S.GENERATOR or columns is None or not self.has(S.PROJECTOR):
            return None
        components = self.metadata(S.PROJECTOR).get("components", {})
        if components.get(S.GENERATOR, {}).get("version") != self.version(S.GENERATOR):
            return None  # built from another generator version: its numbers would not be this run's
        return ProjectorStep(self, terms, columns)


class ProjectorStep:
    """A projection step's objective as one request to the projector model: `(z, *wire) -> (values, total)`,
    whose gradient for z is the server's. `wire(targets, masks)` gives, once per batch, the batch's targets and
    masks as they go in every request: 8-bit pixels and no mask (every pixel known) or a 0/1 mask as uint8, to a
    projector that takes them (`step_pixels_unmasked`, `step_pixels`: export version 3 on); float32 targets and
    masks to an older one, or when the targets are not exactly 8-bit images or the mask is not 0/1."""

    def __init__(self, backend: TFServingBackend, terms, columns: list[int]):
        self.backend, self.terms, self.columns = backend, terms, columns
        self.weights = np.zeros(len(S.PROJECTOR_TERMS), np.float32)
        for (spec, _, _), column in zip(terms, columns, strict=True):
            self.weights[column] = spec.weight
        self.z_dim = backend.metadata(S.GENERATOR)["z_dim"]

    def wire(self, targets: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, ...]:
        """`targets` (N, S, S, 3) in [-1, 1], `masks` (N, S, S, 1): the arrays every request of the batch sends."""
        pixels = exact_pixels(targets)
        if pixels is not None:
            if (masks == 1).all() and self.backend.serves(S.PROJECTOR, S.STEP_PIXELS_UNMASKED):
                return (pixels,)
            if ((masks == 0) | (masks == 1)).all() and self.backend.serves(S.PROJECTOR, S.STEP_PIXELS):
                return pixels, masks.astype(np.uint8)
        return np.asarray(targets, np.float32), np.asarray(masks, np.float32)

    def request(self, z: np.ndarray, *wire: np.ndarray):
        rows = {S.Z: z, S.LOSS_WEIGHTS: np.broadcast_to(self.weights, (len(z), len(self.weights)))}
        if wire[0].dtype != np.uint8:
            signature = S.STEP
            rows |= {S.TARGET: wire[0], S.MASK: wire[1]}
        elif len(wire) == 1:
            signature = S.STEP_PIXELS_UNMASKED
            rows |= {S.PIXELS: wire[0]}
        else:
            signature = S.STEP_PIXELS
            rows |= {S.PIXELS: wire[0], S.KNOWN: wire[1]}
        out = self.backend.call(S.PROJECTOR, signature, rows, [S.LOSSES, S.TOTAL, S.Z_GRAD])
        return out[S.LOSSES], out[S.TOTAL], out[S.Z_GRAD]

    def __call__(self, z, *wire):
        import tensorflow as tf

        n_terms = len(S.PROJECTOR_TERMS)

        @tf.custom_gradient
        def run(z):
            losses, total, z_grad = tf.numpy_function(
                self.request, [z, *wire], [tf.float32, tf.float32, tf.float32], stateful=False
            )
            losses = tf.ensure_shape(losses, [None, n_terms])
            total, z_grad = tf.ensure_shape(total, [None]), tf.ensure_shape(z_grad, [None, self.z_dim])

            def grad(d_total, d_losses):
                # The step's objective reaches z only through the weighted total (the values are reported).
                return d_total[:, None] * z_grad

            return (total, losses), grad

        total, losses = run(z)
        values = {
            spec.name: tf.stop_gradient(losses[:, c]) for (spec, _, _), c in zip(self.terms, self.columns, strict=True)
        }
        return values, total


# The floats `data.images.to_unit` makes of the 256 pixel values: the projector's own table (projector_export).
_UNIT = to_unit(np.arange(256, dtype=np.uint8))


def exact_pixels(images: np.ndarray) -> np.ndarray | None:
    """uint8 pixels p with to_unit(p) == images exactly (targets read from image files are), or None."""
    images = np.asarray(images, np.float32)
    pixels = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return pixels if np.array_equal(_UNIT[pixels], images) else None


def _is_uint8(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == np.uint8


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
        # Compared with the defaults filled in: a parameter added to a built-in term after a projector was exported
        # (contextual's `reduce`) is, at its default, the computation that projector holds.
        defaults = dict(component.defaults)
        found = [
            i
            for i, (_, term, fixed) in enumerate(S.PROJECTOR_TERMS)
            if term == spec.name and {**defaults, **fixed} == {**defaults, **params}
        ]
        if not found:
            return None
        columns.append(found[0])
    return columns


def read_pem_certificates(path: str | Path, option: str) -> bytes:
    """A PEM file of one or more certificates (a CA, a certificate chain), checked by OpenSSL before gRPC sees it:
    gRPC itself only logs several lines on stderr and fails later with "Failed to create security handshaker"."""
    data = _read(path, option)
    check_pem_certificates(data, f"{option} {path}")
    return data


def check_pem_certificates(data: bytes, name: str) -> None:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise FacemathError(f"{name}: not a PEM certificate (no '-----BEGIN CERTIFICATE-----' block)")
    try:
        ssl.create_default_context(cadata=data.decode("ascii"))  # OpenSSL parses every certificate in it
    except (UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else "not PEM text"
        raise FacemathError(f"{name}: not a PEM certificate ({reason})") from None


def read_pem_key_pair(cert: str | Path, key: str | Path, cert_option: str, key_option: str) -> tuple[bytes, bytes]:
    """A certificate and its private key (PEM), checked by OpenSSL: each file is what it should be, the key is not
    encrypted (gRPC takes no passphrase), and the key belongs to the certificate."""
    cert_pem = read_pem_certificates(cert, cert_option)
    key_pem = _read(key, key_option)
    check_key_pair(cert_pem, key_pem, f"{cert_option} {cert}", f"{key_option} {key}")
    return cert_pem, key_pem


def check_key_pair(cert_pem: bytes, key_pem: bytes, cert_name: str, key_name: str) -> None:
    if b"PRIVATE KEY-----" not in key_pem:
        raise FacemathError(f"{key_name}: not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' block)")

    def no_passphrase():
        raise FacemathError(f"{key_name}: the private key is encrypted; gRPC needs it unencrypted")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="facemath-tls.") as folder:  # load_cert_chain reads files only
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        try:
            context.load_cert_chain(cert_file, key_file, password=no_passphrase)
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise FacemathError(
                    f"{key_name}: is not the private key of {cert_name} (key values mismatch)"
                ) from None
            raise FacemathError(f"{key_name}: not a usable PEM private key ({exc.reason or exc})") from None


def _read(path: str | Path, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FacemathError(f"{option}: cannot read {path} ({exc.strerror})") from None


def channel_credentials(tls_ca: str | None, tls_cert: str | None, tls_key: str | None, option: str = "--tls-ca"):
    """gRPC channel credentials for TLS (a CA to verify the server) and mutual TLS (a client certificate and key);
    None for a plaintext channel. Every file is checked first, so a wrong one is one line naming it."""
    import grpc

    if not (tls_ca or tls_cert or tls_key):
        return None
    if bool(tls_cert) != bool(tls_key):
        raise FacemathError(f"{option}: mutual TLS needs both --tls-cert and --tls-key")
    ca = read_pem_certificates(tls_ca, "--tls-ca") if tls_ca else None
    cert, key = read_pem_key_pair(tls_cert, tls_key, "--tls-cert", "--tls-key") if tls_cert else (None, None)
    return grpc.ssl_channel_credentials(ca, key, cert)


def tls_failure(details: str) -> str | None:
    """What a failed TLS handshake means, from a gRPC error's details (None when it is not one): it will not
    succeed on a retry."""
    lowered = details.lower()
    if "handshake" not in lowered and "ssl_error" not in lowered:
        return None
    if "certificate_verify_failed" in lowered:
        return "the server's certificate is not signed by the CA of --tls-ca (CERTIFICATE_VERIFY_FAILED)"
    if "certificate_required" in lowered or "peer did not return a certificate" in lowered:
        return "the server requires a client certificate (--tls-cert and --tls-key)"
    if "wrong_version_number" in lowered:
        return "the server does not speak TLS (drop --tls-ca) or this is not a gRPC port"
    return f"TLS handshake failed ({' '.join(details.split())[-200:]})"


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
            tls = tls_failure(exc.details() or "") if code == "UNAVAILABLE" else None
            if tls is not None:
                raise FacemathError(f"server {target}: UNAVAILABLE: {tls}") from None
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
