"""Projection through TF Serving (the stand-in server on loopback) against the embedded backend, in one run.

- Each batch size is measured in interleaved rounds (embedded, remote, embedded, remote, ...; the order flips every
  round) after a warm-up round that traces the loops: the median remote/embedded ratio over the rounds with its
  range, for the projector path (one request per step) and the three-request path (generator, discriminator
  grad, generator vjp). Targets: projector / embedded >= 0.9 at batch 16 and 64.
- RPCs and bytes per step (request + answer protos, both directions; target: at most a third of the 4.05 MiB per
  step at batch 64 before issue 27), host transfers per step (bench/transfers.py), and how many times a loop was
  traced after the warm-up (must be 0).
- N clients projecting at once against one server: all finish, no errors, total throughput.

Every projection is a `ProjectionRun` (what `facemath project --server` runs), into memory; its steps are timed
from the run's start to its last batch (bench/transfers.py). The machine is shared: run it under `nice`, and read
the ratios (measured within each round), not the absolute rates.

    python bench/serving.py [--models exported_models] [--steps 12] [--batches 16,64] [--rounds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402
from transfers import HostTransfers, spread, timed_run_factory  # noqa: E402

LOSSES = ["perceptual=0.1"]  # with the default contextual term: amos2016's objective
TRANSFERS = HostTransfers()


def projection(backend, registry, batch: int, steps: int, seed: int = 0):
    """A run of `steps` steps (no early stop) on `batch` 8-bit faces the generator made, ready to time."""
    from facemath_core.base import signatures as S
    from facemath_core.data.images import from_unit, to_unit
    from facemath_core.projection.run import JobInputs, ProjectionRun
    from facemath_core.projection.settings import projection_config

    config = projection_config(
        registry, loss_plugins=LOSSES, steps=steps, batch_size=batch, patience=10**9, init="uniform", seed=seed
    )
    run = ProjectionRun(backend, registry, config)
    z_dim = backend.metadata(S.GENERATOR)["z_dim"]
    z = np.random.default_rng(seed).uniform(-1, 1, (batch, z_dim)).astype(np.float32)
    images = to_unit(from_unit(backend.generate(z)))  # as read from image files
    names = [f"face{i}.png" for i in range(batch)]
    prepared = run.prepare(JobInputs(names, names, images, []))
    return run, timed_run_factory(run, prepared, backend, TRANSFERS)


def measure_batch(paths: dict, registry, batch: int, steps: int, rounds: int) -> dict:
    """One batch size: every path warmed up, then `rounds` interleaved rounds against the embedded backend."""
    runs = {name: projection(backend, registry, batch, steps) for name, backend in paths.items()}
    for _, timed in runs.values():
        timed()  # traces the loop: off the clock
    traces = {name: run.projector.tracing_count() for name, (run, _) in runs.items()}
    per_step = {}
    for name, (_, timed) in runs.items():
        took = timed()
        per_step[name] = {
            "RPCs/step": took["rpcs"] / steps,
            "MiB/step": took["bytes"] / steps / 2**20,
            "host reads/step": TRANSFERS.reads / steps,
            "host writes/step": TRANSFERS.writes / steps,
        }
    rates = {name: [] for name in runs}
    ratios = {name: [] for name in runs if name != "embedded"}
    for r in range(rounds):
        for name in ratios:
            pair = ("embedded", name) if r % 2 == 0 else (name, "embedded")
            seconds = {p: runs[p][1]()["seconds"] for p in pair}
            ratios[name].append(seconds["embedded"] / seconds[name])
            for p in pair:
                rates[p].append(batch * steps / seconds[p])
    retraced = {name: run.projector.tracing_count() - traces[name] for name, (run, _) in runs.items()}
    row = {"batch": batch, "steps": steps, "embedded image-steps/s": spread(rates["embedded"])}
    row["embedded"] = per_step["embedded"]
    for name in ratios:
        row[name] = {
            "image-steps/s": spread(rates[name]),
            "/ embedded": spread(ratios[name]),
            **per_step[name],
        }
    row["retraced after warm-up"] = retraced
    return row


def flat(row: dict) -> dict:
    """A table row: medians with their range."""

    def cell(s):
        return f"{s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})"

    out = {"batch": row["batch"], "embedded image-steps/s": cell(row["embedded image-steps/s"])}
    for name in ("projector", "3-RPC"):
        out[f"{name} / embedded"] = cell(row[name]["/ embedded"])
        out[f"{name} MiB/step"] = round(row[name]["MiB/step"], 3)
        out[f"{name} RPCs/step"] = row[name]["RPCs/step"]
    out["host reads/step (embedded, projector)"] = (
        f"{row['embedded']['host reads/step']:.2g}, {row['projector']['host reads/step']:.2g}"
    )
    out["retraced"] = sum(row["retraced after warm-up"].values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds after the warm-up (at least 5)")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends.embedded import EmbeddedBackend
    from facemath_core.serving.backends.tfserving import TFServingBackend
    from facemath_core.serving.standin import start_subprocess

    import_tensorflow_quietly()
    registry = load_registry()
    server, address = start_subprocess(args.models)
    try:
        paths = {
            "embedded": EmbeddedBackend(args.models),
            "projector": TFServingBackend(address, projector=True),
            "3-RPC": TFServingBackend(address, projector=False),
        }
        rows, load = [], [os.getloadavg()[0]]  # the machine is shared: how busy it was, at the start and the end
        for batch in (int(b) for b in args.batches.split(",")):
            rows.append(measure_batch(paths, registry, batch, args.steps, max(args.rounds, 5)))
            print_table("so far", [flat(rows[-1])])
        load.append(os.getloadavg()[0])
        print_table(f"projection, contextual + 0.1 perceptual, {args.steps} steps a round", [flat(r) for r in rows])
        for backend in paths.values():
            backend.close()

        results, errors = [], []

        def client(i):
            with TFServingBackend(address) as backend:
                try:
                    _, timed = projection(backend, registry, 16, args.steps, seed=i)
                    results.append(16 * args.steps / timed()["seconds"])
                except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                    errors.append(f"client {i}: {exc}")

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        concurrency = [
            {
                "clients": args.clients,
                "finished": len(results),
                "errors": len(errors),
                "wall s": wall,
                "total image-steps/s": len(results) * 16 * args.steps / wall,
                "mean per-client image-steps/s": float(np.mean(results)) if results else 0.0,
            }
        ]
        print_table("concurrent clients (batch 16 each, tracing included)", concurrency)
        for line in errors:
            print(line)
        write_json(
            "serving",
            {
                "steps": args.steps,
                "rounds": max(args.rounds, 5),
                "losses": ["contextual 1.0", "perceptual 0.1"],
                "server": "facemath serve (stand-in) on loopback, float_val answers",
                "method": "interleaved rounds after a warm-up; median and range of remote/embedded per round",
                "batches": rows,
                "table": [flat(r) for r in rows],
                "load_average": load,
                "concurrency": concurrency,
                "errors": errors,
            },
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
