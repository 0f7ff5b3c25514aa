"""A fleet of stand-in servers that poll one models.config, a watcher that records what each replica serves, and
clients that use the fleet meanwhile: the harness of tests/serving/test_fleet.py and bench/fleet.py.

Every observation goes through the public gRPC API, as an operator would see the fleet: GetModelStatus for the
versions a replica has AVAILABLE, and GetModelMetadata naming the label for the version the label resolves to.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from facemath_core.base import signatures as S
from facemath_core.serving.backends.tfserving import AVAILABLE_STATE
from facemath_core.serving.deploy import label_version, model_states, write_config
from facemath_core.serving.model_config import read_config_proto
from facemath_core.serving.standin import read_log, start_subprocess

POLL_FAILED = "PollFilesystemAndReloadConfig failed to ReloadConfig: "


def one_file_label_move(source: Path, base: Path, version: int = 2, label: str = "stable") -> None:
    """What the previous `deploy` left when a polling replica did not read models.config between its two runs
    (the second run moved the label as soon as the first had listed the version): the generator's new version
    and the label moved onto it, in one file."""
    shutil.copytree(source / S.GENERATOR / str(version), base / S.GENERATOR / str(version))
    config = read_config_proto(base / "models.config")
    entry = next(c for c in config.model_config_list.config if c.name == S.GENERATOR)
    entry.model_version_policy.specific.versions.append(version)
    entry.version_labels[label] = version
    write_config(base / "models.config", config)


@dataclass
class Replica:
    name: str
    process: object
    address: str

    def log(self) -> str:
        return read_log(self.process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start_fleet(config: Path, count: int, poll: int = 1, extra: tuple[str, ...] = (), first: int = 0) -> list[Replica]:
    """`count` stand-ins started together from `config`, each re-reading it every `poll` s, with the flags the
    shipped manifests give tensorflow_model_server."""
    args = [
        f"--model_config_file={config}",
        f"--model_config_file_poll_wait_seconds={poll}",
        "--allow_version_labels_for_unavailable_models",
        "--port=0",
        *extra,
    ]
    with ThreadPoolExecutor(max_workers=count) as pool:
        started = list(pool.map(lambda _: start_subprocess(args=args), range(count)))
    return [Replica(f"replica-{first + i}", process, address) for i, (process, address) in enumerate(started)]


def stop_fleet(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.stop()


@dataclass
class Observation:
    t: float  # seconds since the watcher's start
    available: tuple[int, ...]  # versions AVAILABLE
    label: int | None  # the version the label resolves to (None: unassigned)


@dataclass
class Watcher:
    """Polls every replica (a thread each) every `every` s; keeps the observations at which what a replica serves
    changed, timed from the watcher's start."""

    replicas: list[Replica]
    model: str = S.GENERATOR
    label: str = "stable"
    every: float = 0.05
    history: dict[str, list[Observation]] = field(default_factory=dict)

    def __post_init__(self):
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._channels: dict[str, grpc.Channel] = {}
        self._threads: list[threading.Thread] = []
        for replica in list(self.replicas):
            self._watch(replica)

    def add(self, replica: Replica) -> None:
        self.replicas.append(replica)
        self._watch(replica)

    def _watch(self, replica: Replica) -> None:
        self._channels[replica.name] = grpc.insecure_channel(replica.address)
        thread = threading.Thread(target=self._run, args=(replica.name,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _observe(self, name: str) -> Observation:
        channel = self._channels[name]
        states = model_states(channel, self.model)
        available = tuple(sorted(v for v, s in states.items() if s == AVAILABLE_STATE))
        label = label_version(channel, self.model, self.label)
        return Observation(round(time.monotonic() - self.t0, 2), available, label)

    def _run(self, name: str) -> None:
        history = self.history.setdefault(name, [])
        while not self._stop.wait(self.every):
            try:
                seen = self._observe(name)
            except Exception:  # noqa: BLE001 - a replica that does not answer is simply not observed this time
                continue
            if not history or (history[-1].available, history[-1].label) != (seen.available, seen.label):
                history.append(seen)

    def now(self, replica: Replica) -> Observation:
        return self._observe(replica.name)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for channel in self._channels.values():
            channel.close()

    def timeline(self, version: int) -> dict[str, dict]:
        """Per replica: when `version` was first seen AVAILABLE and when the label was first seen resolving to it
        (None: never), and the last state seen."""
        out = {}
        for name, history in sorted(self.history.items()):
            loaded = next((o.t for o in history if version in o.available), None)
            labelled = next((o.t for o in history if o.label == version), None)
            last = history[-1] if history else Observation(0.0, (), None)
            out[name] = {
                f"version {version} AVAILABLE at s": loaded,
                f"{self.label} -> {version} at s": labelled,
                "last": {"available": list(last.available), self.label: last.label},
            }
        return out


class LabelClient:
    """Predict by label on every replica in turn through the official stubs, as fast as it can: every answer and
    every failed request, with the version that answered."""

    def __init__(self, replicas: list[Replica], label: str = "stable", z_dim: int = 8):
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.replicas, self.label, self.z_dim = replicas, label, z_dim
        self.stubs = {
            r.name: prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(r.address))
            for r in replicas
        }
        self.answers: list[tuple[str, int]] = []
        self.failures: list[tuple[str, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = S.GENERATOR
        request.model_spec.version_label = self.label
        request.inputs[S.Z].CopyFrom(tf.make_tensor_proto(np.zeros((2, self.z_dim), np.float32)))
        while not self._stop.is_set():
            for name, stub in self.stubs.items():
                try:
                    response = stub.Predict(request, timeout=30)
                    self.answers.append((name, response.model_spec.version.value))
                except grpc.RpcError as exc:
                    self.failures.append((name, exc.code().name, exc.details() or ""))
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class ProjectingClient:
    """facemath projections through the whole fleet (`--server A,B,C --model-label stable`), one after another:
    how many ran, and every error."""

    def __init__(self, replicas: list[Replica], label: str = "stable", steps: int = 3):
        self.target = ",".join(r.address for r in replicas)
        self.label, self.steps = label, steps
        self.done = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from dataclasses import replace

        from facemath_core.host.manager import load_registry
        from facemath_core.projection.projector import LossSpec, ProjectionConfig, Projector
        from facemath_core.serving.backends.tfserving import TFServingBackend

        config = replace(ProjectionConfig(steps=self.steps, patience=1000), losses=(LossSpec("contextual", 1.0),))
        rng = np.random.default_rng(0)
        registry = load_registry(builtins_only=True)  # facemath's own, whatever else is installed
        while not self._stop.is_set():
            backend = TFServingBackend(self.target, label=self.label, retries=0)
            try:
                z_dim = backend.metadata(S.GENERATOR)["z_dim"]
                targets = backend.generate(rng.uniform(-1, 1, (2, z_dim)).astype(np.float32))
                projector = Projector(backend, registry, config)
                masks = np.ones(targets.shape[:3], np.float32)
                projector.project(targets, masks, projector.initial_z(targets, rng))
                self.done += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                backend.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
