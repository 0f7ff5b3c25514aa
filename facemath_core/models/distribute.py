"""Training on more than one device: the tf.distribute strategy of `facemath train --strategy`, and who writes.

- `one`: TensorFlow's default strategy (one device).
- `mirrored`: `tf.distribute.MirroredStrategy` over the local GPUs, or over N logical CPU devices (`--cpu-replicas N`,
  for machines without GPUs and for tests); the CPU split must be configured before TensorFlow initialises its
  devices, so it comes first.
- `multi-worker`: `tf.distribute.MultiWorkerMirroredStrategy`, configured by the standard `TF_CONFIG` variable
  (cluster spec + this task), checked here first so that a bad one is a one-line error, not a hang.

The chief (task `chief`, or `worker` 0 when the cluster has no chief) writes the run: run.json, checkpoints, samples,
TensorBoard. Every other worker takes part in each checkpoint save (its collectives need every worker) but writes
into a temporary folder of its own, deleted when it stops, as TensorFlow's multi-worker guide prescribes.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from facemath_core.base.errors import EXIT_ERROR, FacemathError
from facemath_core.base.runtime import say

STRATEGIES = ("one", "mirrored", "multi-worker")
# How long a multi-worker start waits for every worker of TF_CONFIG (--cluster-timeout): long enough for pods that
# start minutes apart (an image pull, a queue), short enough that a worker that never comes is named the same hour.
DEFAULT_CLUSTER_TIMEOUT = 600.0
NOTE_AFTER = 15.0  # seconds before the one note naming the workers still awaited


def configure_cpu_replicas(count: int) -> None:
    """Split the CPU into `count` logical devices (for MirroredStrategy on a machine without GPUs)."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise FacemathError(
            f"--cpu-replicas {count}: TensorFlow has already set up its devices in this process"
        ) from None


def read_tf_config(environ=os.environ) -> dict:
    """TF_CONFIG, checked: a cluster of `worker` (and optionally one `chief`) addresses and this task in it."""
    text = environ.get("TF_CONFIG")
    if not text:
        raise FacemathError("--strategy multi-worker: set TF_CONFIG (cluster and task) for every worker")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands of levels deep
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise FacemathError(f"TF_CONFIG: not JSON ({reason})") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise FacemathError('TF_CONFIG: expected {"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}')
    for job, addresses in cluster.items():
        if job == "evaluator" or task.get("type") == "evaluator":
            # TensorFlow's evaluator is a side job of Estimator and Keras training loops; facemath has none, and
            # an evaluator task would wait for a training loop that never comes to it.
            raise FacemathError(
                "TF_CONFIG: an evaluator task or job; facemath train runs chief and worker tasks only "
                "(evaluate a run with facemath export and facemath compare)"
            )
        if job not in ("chief", "worker"):
            raise FacemathError(f"TF_CONFIG: cluster job {job!r} is not one of chief, worker")
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise FacemathError(f"TF_CONFIG: cluster[{job!r}] must be a list of 'host:port' strings")
        for address in addresses:
            problem = _address_problem(address)
            if problem:
                raise FacemathError(f"TF_CONFIG: cluster[{job!r}] address {address!r}: {problem}")
    if not cluster.get("worker") and not cluster.get("chief"):
        raise FacemathError("TF_CONFIG: the cluster has no workers")
    if len(cluster.get("chief", [])) > 1:
        raise FacemathError("TF_CONFIG: at most one chief")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise FacemathError(f"TF_CONFIG: task {kind!r} {index!r} is not in the cluster")
    return config


def _address_problem(address: str) -> str | None:
    """What is wrong with a 'host:port' of a cluster spec ([v6::1]:port for IPv6), or None."""
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        return "expected 'host:port'"
    if not port.isascii() or not port.isdigit():
        return f"port {port!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"port {port} is outside 1-65535"
    return None


_made: dict = {}  # one strategy per process: TensorFlow's devices and collectives are set up once


def loopback_cluster(workers: int) -> dict:
    """A TF_CONFIG cluster of `workers` processes on this machine (tests and benchmarks): free loopback ports,
    picked by binding port 0 and released just before the workers bind them."""
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return {"worker": [f"127.0.0.1:{port}" for port in ports]}


def make_strategy(name: str, cpu_replicas: int = 0, cluster_timeout: float = DEFAULT_CLUSTER_TIMEOUT):
    """The strategy for --strategy `name`; configure logical CPU devices first when `cpu_replicas` is given. A
    multi-worker strategy waits for every worker of TF_CONFIG; one that has not come after `cluster_timeout`
    seconds ends the process with one line naming it (`cluster_deadline`)."""
    if (name, cpu_replicas) not in _made:
        _made[(name, cpu_replicas)] = _new_strategy(name, cpu_replicas, cluster_timeout)
    return _made[(name, cpu_replicas)]


def _peers(config: dict) -> list[tuple[str, int, str]]:
    """(job, index, 'host:port') of every task of the cluster but this one."""
    task = config["task"]
    return [
        (job, index, address)
        for job, addresses in config["cluster"].items()
        for index, address in enumerate(addresses)
        if (job, index) != (task["type"], task["index"])
    ]


def _absent(peers: list[tuple[str, int, str]]) -> list[str]:
    """The peers that accept no connection on their address: their `facemath train` has not started its server."""
    absent = []
    for job, index, address in peers:
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        except OSError:
            absent.append(f"{job} {index} ({address})")
    return absent


@contextlib.contextmanager
def cluster_deadline(config: dict, timeout: float, note_after: float = NOTE_AFTER) -> Iterator[None]:
    """Around the creation of a multi-worker strategy, which blocks inside TensorFlow until every worker of the
    cluster has started: after `note_after` seconds one note says who is awaited; after `timeout` seconds the
    process ends (exit 1) with one line naming the workers that never came. Nothing can interrupt the blocked
    TensorFlow call, so a watchdog thread ends the process; nothing has been written by then."""
    done = threading.Event()
    peers = _peers(config)

    def watch():
        if timeout > note_after and not done.wait(note_after):
            awaited = _absent(peers)
            if awaited and not done.is_set():
                say(f"note: waiting for {', '.join(awaited)} of TF_CONFIG to start (--cluster-timeout {timeout:g} s)")
        if done.wait(max(0.0, timeout - (note_after if timeout > note_after else 0.0))):
            return
        missing = _absent(peers)
        who = (
            f"{', '.join(missing)} did not start"
            if missing
            else "the cluster did not form (every worker answers: do all of them run the same TF_CONFIG cluster?)"
        )
        say(
            f"error: TF_CONFIG: {who} within --cluster-timeout {timeout:g} s; start facemath train on every "
            f"worker of the cluster, or give them longer"
        )
        os._exit(EXIT_ERROR)

    threading.Thread(target=watch, name="facemath-cluster-deadline", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def check_placement(name: str, cpu_replicas: int = 0) -> None:
    """The checks of --strategy, --cpu-replicas and TF_CONFIG that need no TensorFlow."""
    if name not in STRATEGIES:
        raise FacemathError(f"--strategy {name!r}: choose {', '.join(STRATEGIES)}")
    if cpu_replicas and name != "mirrored":
        raise FacemathError("--cpu-replicas: only with --strategy mirrored")
    if name == "multi-worker":
        read_tf_config()


def _new_strategy(name: str, cpu_replicas: int, cluster_timeout: float = DEFAULT_CLUSTER_TIMEOUT):
    import tensorflow as tf

    check_placement(name, cpu_replicas)
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_replicas:
            configure_cpu_replicas(cpu_replicas)
            return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
        return tf.distribute.MirroredStrategy()
    with cluster_deadline(read_tf_config(), cluster_timeout):
        return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process writes the run (always true outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


class WriteTarget:
    """Where this process writes checkpoints: the run folder on the chief, a temporary folder on other workers."""

    def __init__(self, run_dir: Path, strategy):
        self.chief = is_chief(strategy)
        self.temp = None if self.chief else Path(tempfile.mkdtemp(prefix="facemath-worker-"))
        self.checkpoints = run_dir / "checkpoints" if self.chief else self.temp / "checkpoints"
        if self.temp is not None:
            atexit.register(self.close)  # also when training stops on an error

    def close(self) -> None:
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)


def check_batch(batch_size: int, strategy) -> None:
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise FacemathError(
            f"--batch-size {batch_size}: the global batch must divide among the {replicas} replicas "
            f"(try {batch_size // replicas * replicas or replicas})"
        )


def synchronize_batch_norm(model) -> int:
    """Make every BatchNormalization layer of the model's networks use the global batch's statistics.

    Keras' BatchNormalization normalises by each replica's own batch under a strategy unless `synchronized`; with
    it on, the replicas all-reduce their means and variances every step (one small all-reduce per BN layer), so the
    networks see the statistics of the global batch, exactly as on one device: the strategy changes where a run
    computes, never what it computes, and a run may resume under another strategy. The layer reads the flag at
    call time, so setting it on built layers is enough. Returns the number of layers changed.
    """
    import keras

    changed = 0
    for network in model.networks().values():
        for layer in network._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
                changed += 1
    return changed
