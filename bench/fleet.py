"""A label move on a fleet of replicas that poll one models.config (issue 28), before and after `deploy --reload`.

Three stand-in servers (the real server's reload semantics: tests/serving/tfserving_reference.py) poll the same
models.config every second, started with the shipped manifests' label flag. Every replica is watched through the
gRPC API every 50 ms (GetModelStatus; GetModelMetadata by label), and clients use the fleet by label meanwhile.

- before: the file the previous `deploy` left when a replica did not poll between its two runs (the new version and
  `stable` moved onto it in one file), then a fourth replica started from it, as an HPA or a restart starts one;
- after: `deploy --reload` for every replica (versions first, the label once all have them).

Per replica: when the new version was first seen AVAILABLE and `stable` first seen on it, the refused reloads it logged,
and what the clients saw. Writes bench/results/fleet.json.

    python bench/fleet.py [--models exported_models] [--replicas 3] [--watch 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, str(Path(__file__).parents[1]))  # the fleet harness of the tests

from common import print_table, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--watch", type=float, default=6.0, help="seconds to watch after the change")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from facemath_core.base import signatures as S
    from facemath_core.serving.deploy import deploy, roll_out
    from facemath_core.serving.model_config import read_config
    from tests.serving.fleet import (
        POLL_FAILED,
        LabelClient,
        Watcher,
        one_file_label_move,
        start_fleet,
        stop_fleet,
    )

    models = Path(args.models)
    old = max(int(p.name) for p in (models / S.GENERATOR).iterdir() if p.name.isdigit())
    new = old + 1  # a copy of the newest generator under the next number: the same z size for clients by label
    work = Path(tempfile.mkdtemp(prefix="facemath-fleet."))
    results = {}
    try:
        for name in ("before", "after"):
            source = work / name / "exported"
            shutil.copytree(models, source)
            base = work / name / "models"
            first = deploy(source, base, label="stable")
            shutil.copytree(source / S.GENERATOR / str(old), source / S.GENERATOR / str(new))
            replicas = start_fleet(first.config_path, args.replicas)
            z_dim = _z_dim(source)
            watcher = Watcher(replicas)
            client = LabelClient(replicas, z_dim=z_dim)
            time.sleep(1.0)
            started = time.monotonic() - watcher.t0
            try:
                if name == "before":
                    one_file_label_move(source, base, new)
                    time.sleep(args.watch)
                    (newcomer,) = start_fleet(first.config_path, 1, first=args.replicas)
                    watcher.add(newcomer)
                    time.sleep(2.0)
                else:
                    result = deploy(source, base, label="stable", rollout=True)
                    roll_out(result, [r.address for r in replicas], timeout=120)
                    time.sleep(args.watch)
            finally:
                client.stop()
                watcher.stop()
                logs = {r.name: r.log() for r in watcher.replicas}
                stop_fleet(watcher.replicas)
            timeline = watcher.timeline(new)
            for replica, row in timeline.items():
                row["refused reloads"] = logs[replica].count(POLL_FAILED)
                row["client answers by version"] = {
                    str(v): sum(1 for r, seen in client.answers if r == replica and seen == v) for v in (old, new)
                }
            generator = next(e for e in read_config(first.config_path) if e.name == S.GENERATOR)
            results[name] = {
                "change at s": round(started, 2),
                "replicas": timeline,
                "client failures": len(client.failures),
                "client failure kinds": sorted({f"{code}: {details[:160]}" for _, code, details in client.failures}),
                "generator labels in models.config": generator.labels,
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for name, result in results.items():
        for replica, row in result["replicas"].items():
            rows.append(
                {
                    "scenario": name,
                    "replica": replica,
                    f"v{new} AVAILABLE at s": row[f"version {new} AVAILABLE at s"],
                    f"stable->{new} at s": row[f"stable -> {new} at s"],
                    "stable at end": row["last"]["stable"],
                    "refused reloads": row["refused reloads"],
                }
            )
    print_table("label move on a polling fleet (times from the watcher's start)", rows)
    for name, result in results.items():
        print(f"{name}: change at {result['change at s']} s, client failures {result['client failures']}")
        for kind in result["client failure kinds"]:
            print(f"  {kind}")
    write_json("fleet", {"models": str(models), "old": old, "new": new, "watch s": args.watch, **results})


def _z_dim(source: Path) -> int:
    import json

    from facemath_core.base import signatures as S

    folder = source / S.GENERATOR
    version = max(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    return json.loads((folder / str(version) / "assets.extra" / S.METADATA_FILE).read_text())["z_dim"]


if __name__ == "__main__":
    main()
