"""Past one machine (issue 16), measured on this one, then carried to 1, 8 and 64 replicas on paper.

- Projection through TF Serving: image-steps/s with 1 and 2 stand-in replicas (`facemath serve` processes) and 1, 2
  and 4 client processes on loopback, all clients projecting at once after a warm-up; RPCs and bytes per
  image-step.
- Training: step time of `facemath train gan` under `one`, `mirrored` (2 logical CPU devices) and `multi-worker`
  (2 processes on 127.0.0.1), timed from step 50 on (start-up and tracing excluded); the bytes all-reduced per
  step, counted from the model's trainable variables and its synchronized BatchNorm layers; the distribution
  overhead as a share of the step.
- On paper: images/s and hours for CelebA (202,599 faces, 25 epochs) and for projecting 100,000 photos at 1000
  steps, on 1, 8 and 64 replicas, from the numbers above and the assumptions written into the JSON.

What 2 shared cores can and cannot show: every process here (servers, clients, workers) competes for the same two
cores, so adding replicas or clients cannot add compute; the measurements show the per-request and per-step costs
(RPCs, bytes, the all-reduce and its synchronisation) and that the paths work, not speed-ups.

    python bench/scale.py [--steps 20] [--clients 1,2,4] [--train-steps 100]
    python bench/scale.py --paper-only     # after changing ASSUMPTIONS: redo the paper table from scale.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from common import RESULTS, forward_macs, print_table, write_json  # noqa: E402

ROOT = Path(__file__).parent.parent
CELEBA_FACES = 202_599
CELEBA_EPOCHS = 25
PHOTOS = 100_000
PROJECTION_STEPS = 1000
REPLICAS = (1, 8, 64)
# The bench's training model: small enough for 2 cores, with every layer kind of the real DCGAN.
BENCH_ARCH = dict(image_size=32, z_dim=16, ngf=8, ndf=8)
BENCH_BATCH = 32
# The paper's training model: the DCGAN of docs/training.md's CelebA recipe (train-job.yaml runs it).
PAPER_ARCH = dict(image_size=64, z_dim=100, ngf=64, ndf=64)
PAPER_BATCH_PER_REPLICA = 64


# --- projection ----------------------------------------------------------------------------------------------


def _client(index, plan, batch, steps, warm, everyone, barriers, results):
    """Projection client `index`: for each (clients, replicas, target) of the plan, wait for every client process;
    if it is one of the first `clients`, warm up, wait for the other active clients, then project `steps` steps.
    The idle ones wait at the next rendezvous, so nothing else runs while a configuration is timed."""
    import time

    import numpy as np

    from facemath_core.base import signatures as S
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.projection.projector import Projector
    from facemath_core.projection.settings import projection_config
    from facemath_core.serving.backends.tfserving import TFServingBackend

    import_tensorflow_quietly()
    registry = load_registry()
    for clients, replicas, target in plan:
        everyone.wait()
        if index >= clients:
            continue
        backend = TFServingBackend(target)
        config = projection_config(
            registry,
            loss_plugins=["contextual=1", "perceptual=0.1"],
            steps=warm + steps,
            batch_size=batch,
            patience=10**9,
        )
        projector = Projector(backend, registry, config)
        rng = np.random.default_rng(index)
        z_dim = backend.metadata(S.GENERATOR)["z_dim"]
        targets_ = backend.generate(rng.uniform(-1, 1, (batch, z_dim)).astype(np.float32))
        marks = {}

        def on_step(step, mean, terms, backend=backend, marks=marks, barrier=barriers[clients]):
            if step == warm:  # traced and warm: start together
                barrier.wait()
                marks["start"] = (time.time(), backend.calls, backend.bytes_sent + backend.bytes_received)
            if step == warm + steps:
                marks["end"] = (time.time(), backend.calls, backend.bytes_sent + backend.bytes_received)

        projector.project(
            targets_,
            np.ones(targets_.shape[:3], np.float32),
            projector.initial_z(targets_, rng),
            progress=on_step,
            steps_per_call=1,  # on_step's clock marks single steps (the loop would otherwise run many per call)
        )
        backend.close()
        (t0, c0, b0), (t1, c1, b1) = marks["start"], marks["end"]
        results.put(
            {
                "clients": clients,
                "replicas": replicas,
                "start": t0,
                "end": t1,
                "image_steps": batch * steps,
                "rpcs": c1 - c0,
                "bytes": b1 - b0,
            }
        )


def projection(models: str, clients_list: list[int], batch: int, steps: int, warm: int = 3) -> list[dict]:
    from facemath_core.serving.standin import start_subprocess

    servers = [start_subprocess(models) for _ in range(2)]
    addresses = [address for _, address in servers]
    # One channel per endpoint; the client splits each step's batch over them (one request in flight per replica).
    targets = [(1, addresses[0]), (2, ",".join(addresses))]
    plan = [(clients, replicas, target) for clients in clients_list for replicas, target in targets]
    context = multiprocessing.get_context("spawn")  # a fresh TensorFlow per client
    # One set of client processes for every configuration: starting TensorFlow in a process costs more than a
    # configuration's measurement on 2 busy cores.
    everyone = context.Barrier(max(clients_list))
    barriers = {clients: context.Barrier(clients) for clients in clients_list}
    results = context.Queue()
    processes = [
        context.Process(target=_client, args=(i, plan, batch, steps, warm, everyone, barriers, results))
        for i in range(max(clients_list))
    ]
    rows = []
    try:
        for p in processes:
            p.start()
        measured = [results.get(timeout=600) for _ in range(sum(clients for clients, _, _ in plan))]
        for p in processes:
            p.join()
        for clients, replicas, _ in plan:
            runs = [m for m in measured if m["replicas"] == replicas and m["clients"] == clients]
            wall = max(m["end"] for m in runs) - min(m["start"] for m in runs)
            image_steps = sum(m["image_steps"] for m in runs)
            rows.append(
                {
                    "replicas": replicas,
                    "clients": clients,
                    "image-steps/s": image_steps / wall,
                    "RPCs/image-step": sum(m["rpcs"] for m in runs) / image_steps,
                    "KiB/image-step": sum(m["bytes"] for m in runs) / image_steps / 1024,
                }
            )
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait()
    return rows


# --- training ------------------------------------------------------------------------------------------------


def _train(strategy: str, data: Path, out: Path, steps: int) -> None:
    """One `facemath train gan` run (a 2-worker cluster for multi-worker) of `steps` steps into `out`."""
    arch = [f"--{k.replace('_', '-')}={v}" for k, v in BENCH_ARCH.items()]
    args = ["train", "gan", "--data", str(data), "--out", str(out), "--steps", str(steps)]
    args += ["--batch-size", str(BENCH_BATCH), "--sample-every", "100000", "--checkpoint-every", "100000", *arch]
    command = [sys.executable, "-c", "from facemath_core.cli import main; main()", *args]
    if strategy == "multi-worker":
        from facemath_core.models.distribute import loopback_cluster

        cluster = loopback_cluster(2)
        workers = []
        for index in range(2):
            config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            env = {**os.environ, "TF_CONFIG": config}
            workers.append(
                subprocess.Popen(
                    [*command, "--strategy", "multi-worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        for worker in workers:
            _, stderr = worker.communicate(timeout=600)
            if worker.returncode:
                raise RuntimeError(stderr.decode()[-2000:])
    else:
        extra = ["--strategy", "mirrored", "--cpu-replicas", "2"] if strategy == "mirrored" else []
        result = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=600)
        if result.returncode:
            raise RuntimeError(result.stderr[-2000:])


def seconds_since_start(run: Path, batch: int) -> dict[int, float]:
    """Seconds from the start of training to each logged step, from the chief's TensorBoard `images_per_second`
    (written every 50 steps: images so far / seconds so far)."""
    import tensorflow as tf

    seconds = {}
    for path in (run / "logs").rglob("events.out.tfevents*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == "images_per_second":
                    rate = float(tf.make_ndarray(value.tensor))
                    seconds[event.step] = event.step * batch / rate
    return seconds


def allreduce_payload(arch: dict) -> dict:
    """Bytes all-reduced per GAN step: every trainable variable's gradient once (the D and the G update), plus the
    synchronized BatchNorm statistics (a mean and a variance per channel) at every BN call: the train step calls
    G twice and D three times (models/gan.py: real, fake, fake again for G's update). Float32."""
    import keras

    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import build_model

    model = build_model("gan", ArchConfig(**arch), TrainOptions(batch_size=8))
    gradients = sum(int(v.shape.num_elements()) for v in model.trainable_variables) * 4
    bn = 0
    for network, calls in ((model.generator, 2), (model.discriminator, 3)):
        for layer in network._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                bn += calls * 2 * int(layer.gamma.shape[0]) * 4
    g, d = forward_macs(model.generator), forward_macs(model.discriminator)
    # D update: G fwd + D fwd/bwd on real and fake; G update: G fwd/bwd + D fwd + D input-grad (as bench/models.py).
    flops = 2 * (4 * g + 8 * d)
    return {"gradient_bytes": gradients, "batchnorm_bytes": bn, "flops_per_image": flops}


def training(steps: int) -> tuple[list[dict], dict]:
    """Step time between the chief's logs at steps 50 and `steps`: start-up, tracing and the workers' wait for
    each other fall before step 50 and cancel."""
    from facemath_core.data.synth import write_synthetic_folder

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "faces"
        write_synthetic_folder(data, 4 * BENCH_BATCH + 16, seed=0, size=BENCH_ARCH["image_size"])
        for strategy in ("one", "mirrored", "multi-worker"):
            run = Path(tmp) / strategy
            _train(strategy, data, run, steps)
            seconds = seconds_since_start(run, BENCH_BATCH)
            step = (seconds[steps] - seconds[50]) / (steps - 50)
            rows.append({"strategy": strategy, "replicas": 1 if strategy == "one" else 2, "step ms": step * 1e3})
            print_table("so far", rows[-1:])
    one = rows[0]["step ms"]
    payload = allreduce_payload(BENCH_ARCH)
    total = payload["gradient_bytes"] + payload["batchnorm_bytes"]
    for row in rows:
        n = row["replicas"]
        row["images/s"] = BENCH_BATCH / row["step ms"] * 1e3
        row["all-reduced KiB/step"] = total / 1024 if n > 1 else 0.0
        # Ring all-reduce: each worker sends (and receives) 2(N-1)/N of the payload.
        row["sent KiB/step/worker"] = 2 * (n - 1) / n * total / 1024
        # The same 2 cores do the same arithmetic under every strategy: what a step costs beyond `one` is the
        # split into replicas, the all-reduces and their synchronisation.
        row["overhead share"] = max(0.0, (row["step ms"] - one) / row["step ms"])
    return rows, payload


LIMITS = (
    "2 shared CPU cores: servers, clients and workers compete for the same cores (and with other users of the "
    "machine), so more replicas or clients cannot add compute here; the rows show per-image-step and per-step "
    "costs (RPCs, bytes, the overhead of splitting a step and all-reducing) and that each path works, not speed-ups."
)

# --- on paper ------------------------------------------------------------------------------------------------

ASSUMPTIONS = {
    "accelerator_sustained_tflops": 25.0,
    "accelerator_note": "sustained float16 throughput of one training or serving accelerator on these small "
    "convolutions at batch 64: under 10% of an A100's or H100's dense float16 tensor peak, which layers this small "
    "cannot fill; replace by bench/gpu.sh's "
    "measurement on the target hardware",
    "batch_per_replica": PAPER_BATCH_PER_REPLICA,
    "weak_scaling": "the per-replica batch stays 64, so the global batch grows with the replicas (a GAN may need "
    "its learning rate retuned for a global batch of 4096)",
    "allreduce": "ring all-reduce, 2(N-1)/N of the payload sent per replica, no overlap with compute (pessimistic)",
    "link_gbytes_per_s": {"8": 100.0, "64": 12.5},
    "link_note": "8 replicas: one machine, NVLink-class links (100 GB/s); 64 replicas: 8 machines of 8 over "
    "100 Gb/s Ethernet (12.5 GB/s), the slowest link sets the ring's pace",
    "latency_s_per_hop": {"8": 5e-6, "64": 3e-5},
    "projection": "images are independent: every replica serves its own share of requests, with enough client "
    "workers to keep it busy; the limit per replica is the smaller of its compute (CPU: the measured 1-replica "
    "rate; accelerator: the sustained FLOP/s over projection.json's FLOP per image-step) and its network link "
    "(the bytes per image-step measured here over 10 Gb/s per serving pod)",
    "serving_link_gbytes_per_s": 1.25,
}


def _cpu_training_gflops() -> float:
    models = json.loads((RESULTS / "models.json").read_text())
    return next(r for r in models["throughput"] if r["model"].startswith("gan"))["GFLOP/s"]


def paper_table(projection_rows: list[dict], paper: dict) -> list[dict]:
    projection_speed = json.loads((RESULTS / "projection.json").read_text())["speed"][0]
    flops_per_image_step = projection_speed["GFLOP/image-step"] * 1e9
    one_client = next(r for r in projection_rows if r["replicas"] == 1 and r["clients"] == 1)
    bytes_per_image_step = one_client["KiB/image-step"] * 1024
    # This machine as a replica: the FLOP/s GAN training reaches on it (bench/models.py, 64x64), applied to the
    # paper model.
    cpu_flops = _cpu_training_gflops() * 1e9
    payload = paper["gradient_bytes"] + paper["batchnorm_bytes"]
    rows = []
    for kind, flops in (("2-core CPU (this machine)", cpu_flops), ("accelerator (assumed)", None)):
        sustained = flops if flops is not None else ASSUMPTIONS["accelerator_sustained_tflops"] * 1e12
        step_compute = PAPER_BATCH_PER_REPLICA * paper["flops_per_image"] / sustained
        for n in REPLICAS:
            key = "8" if n <= 8 else "64"
            link = ASSUMPTIONS["link_gbytes_per_s"][key] * 1e9
            hops = 2 * (n - 1)
            comm = 0.0 if n == 1 else hops / n * payload / link + hops * ASSUMPTIONS["latency_s_per_hop"][key]
            efficiency = step_compute / (step_compute + comm)
            images_per_s = n * PAPER_BATCH_PER_REPLICA / (step_compute + comm)
            # Projection: per replica, compute-bound (CPU: the measured stand-in rate; accelerator: FLOPs) or
            # bound by its link.
            compute_rate = one_client["image-steps/s"] if flops is not None else sustained / flops_per_image_step
            link_rate = ASSUMPTIONS["serving_link_gbytes_per_s"] * 1e9 / bytes_per_image_step
            per_replica = min(compute_rate, link_rate)
            rows.append(
                {
                    "replica": kind,
                    "replicas": n,
                    "train efficiency": efficiency,
                    "train images/s": images_per_s,
                    "CelebA 25 epochs h": CELEBA_FACES * CELEBA_EPOCHS / images_per_s / 3600,
                    "project image-steps/s": n * per_replica,
                    "100k photos x 1000 steps h": PHOTOS * PROJECTION_STEPS / (n * per_replica) / 3600,
                    "projection bound by": "compute" if compute_rate <= link_rate else "network",
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=str(ROOT / "exported_models"))
    parser.add_argument("--steps", type=int, default=20, help="measured projection steps per client")
    parser.add_argument("--batch", type=int, default=16, help="images per projection client")
    parser.add_argument("--clients", default="1,2,4")
    parser.add_argument("--train-steps", type=int, default=100, help="steps per training run (timed from 50 on)")
    parser.add_argument(
        "--paper-only", action="store_true", help="measure nothing: redo the paper table from scale.json's rows"
    )
    args = parser.parse_args()
    from facemath_core.base.runtime import import_tensorflow_quietly

    started = time.perf_counter()
    if args.paper_only:
        results = json.loads((RESULTS / "scale.json").read_text())
        results = {k: v for k, v in results.items() if k not in ("machine", "written")}
    else:
        results = measure(args)
    projection_rows = results["projection"]["rows"]
    import_tensorflow_quietly()
    paper_payload = allreduce_payload(PAPER_ARCH)
    paper = paper_table(projection_rows, paper_payload)
    print_table(f"on paper: DCGAN {PAPER_ARCH}, batch {PAPER_BATCH_PER_REPLICA} per replica", paper)
    results["paper"] = {
        "arch": PAPER_ARCH,
        "payload": paper_payload,
        "projection_gflop_per_image_step": json.loads((RESULTS / "projection.json").read_text())["speed"][0][
            "GFLOP/image-step"
        ],
        "cpu_training_gflops": _cpu_training_gflops(),
        "assumptions": ASSUMPTIONS,
        "rows": paper,
    }
    if not args.paper_only:
        results["seconds"] = time.perf_counter() - started
    write_json("scale", results)


def measure(args) -> dict:
    projection_rows = projection(args.models, [int(c) for c in args.clients.split(",")], args.batch, args.steps)
    print_table(
        f"projection through 1-2 stand-in replicas, batch {args.batch} per client, {args.steps} steps", projection_rows
    )
    train_rows, bench_payload = training(args.train_steps)
    print_table(f"training step, GAN {BENCH_ARCH}, global batch {BENCH_BATCH}", train_rows)
    return {
        "projection": {
            "batch_per_client": args.batch,
            "steps": args.steps,
            "losses": ["contextual 1.0", "perceptual 0.1"],
            "server": "facemath serve (stand-in) processes on loopback, the projector signature",
            "rows": projection_rows,
        },
        "training": {
            "arch": BENCH_ARCH,
            "global_batch": BENCH_BATCH,
            "steps": args.train_steps,
            "timed": f"steps 50 to {args.train_steps}, from the chief's TensorBoard images_per_second",
            "payload": bench_payload,
            "rows": train_rows,
        },
        "limits": LIMITS,
    }


if __name__ == "__main__":
    main()
