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
import faulthandler
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from facemath_core.base.errors import FacemathError
from facemath_core.base.runtime import terminal_stderr

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


# The watchdog of `cluster_deadline`, a separate process: TensorFlow holds the GIL while it waits for the
# cluster, so no thread of this process could run. It reads its settings from argv and waits on stdin: end of
# file (the strategy is made, or this process died) ends it quietly. Otherwise it names the workers that accept no
# connection on their address (their `facemath train` has not started its server), once as a note, then as the
# error line at the deadline. Standard library only, started with -I: nothing of facemath's to import.
_WATCHDOG = r"""
import concurrent.futures, json, select, socket, sys, time
timeout, note_after, peers = float(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
start = time.monotonic()

def ended(seconds):
    ready, _, _ = select.select([sys.stdin], [], [], max(0.0, seconds))
    return bool(ready) and sys.stdin.buffer.read1(1) == b""

def absent(peer):
    host, _, port = peer[2].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
    except OSError:
        return "%s %d (%s)" % tuple(peer)

def awaited():
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return [who for who in pool.map(absent, peers) if who]

def say(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()

if timeout > note_after:
    if ended(note_after):
        sys.exit()
    who = awaited()
    if who:
        say("note: waiting for %s of TF_CONFIG to start (--cluster-timeout %g s)" % (", ".join(who), timeout))
while not ended(timeout - (time.monotonic() - start)):
    if time.monotonic() - start >= timeout:
        who = awaited()
        what = ", ".join(who) + " did not start" if who else (
            "the cluster did not form (every worker answers: do all of them run the same TF_CONFIG cluster?)"
        )
        say("error: TF_CONFIG: %s within --cluster-timeout %g s; start facemath train on every worker of the "
            "cluster, or give them longer" % (what, timeout))
        sys.exit()
"""
# After the deadline the watchdog needs a moment to probe the workers and print its line; then this process ends.
_EXIT_GRACE = 3.0


@contextlib.contextmanager
def cluster_deadline(config: dict, timeout: float, note_after: float = NOTE_AFTER) -> Iterator[None]:
    """Around the creation of a multi-worker strategy, which blocks inside TensorFlow (holding the GIL) until every
    worker of the cluster has started: after `note_after` seconds one note says who is awaited; after `timeout`
    seconds one line names the workers that never came (the `_WATCHDOG` process writes both) and this process
    ends with exit 1 (faulthandler's own C watchdog thread, which needs no GIL, calls _exit(1); its traceback goes
    to /dev/null). Nothing has been written by then."""
    peers = _peers(config)
    stderr = terminal_stderr()
    watchdog = subprocess.Popen(
        [sys.executable, "-I", "-c", _WATCHDOG, str(timeout), str(note_after), json.dumps(peers)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    devnull = open(os.devnull, "w")  # noqa: SIM115 (faulthandler keeps writing to it until cancelled)
    faulthandler.dump_traceback_later(timeout + _EXIT_GRACE, exit=True, file=devnull)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        devnull.close()
        watchdog.stdin.close()  # end of file: the watchdog ends quietly
        watchdog.wait()


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
