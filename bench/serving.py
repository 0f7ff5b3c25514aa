"""Projection through TF Serving (the stand-in server on loopback) against the embedded backend, in one run.

- image-steps/s per batch size for the embedded backend and both remote paths: the projector (one request per
  step) and the three-request path (generator, discriminator grad, generator vjp); RPCs and bytes per step;
  target: projector path >= 75% of embedded at batch 64;
- N clients projecting at once against one server: all finish, no errors, total throughput.

    python bench/serving.py [--models exported_models] [--steps 12] [--batches 16,64] [--clients 4] [--rounds 2]
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


def timed_projection(backend, registry, batch: int, steps: int, seed: int = 0):
    from facemath_core.base import signatures as S
    from facemath_core.projection.projector import Projector
    from facemath_core.projection.settings import projection_config

    config = projection_config(
        registry, loss_plugins=["contextual=1", "perceptual=0.1"], steps=steps, batch_size=batch, patience=10**9
    )
    projector = Projector(backend, registry, config)
    rng = np.random.default_rng(seed)
    z_dim = backend.metadata(S.GENERATOR)["z_dim"]
    targets = backend.generate(rng.uniform(-1, 1, (batch, z_dim)).astype(np.float32))
    z0 = projector.initial_z(targets, rng)
    times, counters = {}, {}

    def on_step(step, mean, terms):
        times[step] = time.perf_counter()
        counters[step] = (
            getattr(backend, "calls", 0),
            getattr(backend, "bytes_sent", 0) + getattr(backend, "bytes_received", 0),
        )

    projector.project(targets, np.ones(targets.shape[:3], np.float32), z0, progress=on_step)
    first = 3  # the first steps trace the step function
    rate = (steps - first) * batch / (times[steps] - times[first])
    calls = (counters[steps][0] - counters[first][0]) / (steps - first)
    moved = (counters[steps][1] - counters[first][1]) / (steps - first)
    return rate, calls, moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; each path keeps its best")
    args = parser.parse_args()
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends.embedded import EmbeddedBackend
    from facemath_core.serving.backends.tfserving import TFServingBackend

    import_tensorflow_quietly()
    registry = load_registry()
    from facemath_core.serving.standin import start_subprocess

    server, address = start_subprocess(args.models)
    try:
        rows = []
        for batch in (int(b) for b in args.batches.split(",")):
            # The machine is shared: the three paths take turns, and each keeps its best round.
            best: dict[str, tuple] = {}
            for _ in range(args.rounds):
                for path in ("embedded", "projector", "3-RPC"):
                    backend = (
                        EmbeddedBackend(args.models)
                        if path == "embedded"
                        else TFServingBackend(address, projector=path == "projector")
                    )
                    measured = timed_projection(backend, registry, batch, args.steps)
                    backend.close()
                    if path not in best or measured[0] > best[path][0]:
                        best[path] = measured
            row = {"batch": batch, "embedded image-steps/s": best["embedded"][0]}
            for path in ("projector", "3-RPC"):
                rate, calls, moved = best[path]
                row |= {
                    f"{path} image-steps/s": rate,
                    f"{path} / embedded": rate / best["embedded"][0],
                    f"{path} RPCs/step": calls,
                    f"{path} MiB/step": moved / 2**20,
                }
            rows.append(row)
            print_table("so far", rows[-1:])
        print_table(f"projection, contextual + perceptual, {args.steps} steps (stand-in server on loopback)", rows)

        results, errors = [], []

        def client(i):
            backend = TFServingBackend(address)
            try:
                results.append(timed_projection(backend, registry, 16, args.steps, seed=i)[0])
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                errors.append(f"client {i}: {exc}")
            finally:
                backend.close()

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
                "total image-steps/s": args.clients * 16 * args.steps / wall,
                "mean per-client image-steps/s": float(np.mean(results)) if results else 0.0,
            }
        ]
        print_table("concurrent clients (batch 16 each)", concurrency)
        for line in errors:
            print(line)
        write_json(
            "serving",
            {
                "steps": args.steps,
                "rounds": args.rounds,
                "losses": ["contextual 1.0", "perceptual 0.1"],
                "server": "facemath serve (stand-in) on loopback, float_val answers",
                "batches": rows,
                "concurrency": concurrency,
                "errors": errors,
            },
        )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
