"""Attribute arithmetic with the shipped models, judged by the oracle: how often does it work?

Target (on held-out labelled faces): the oracle judges the arithmetic successful >= 80% of the time with the other
attributes preserved >= 80%. Reads the latents `facemath compare` saved (GAN projection, hybrid, in-domain hybrid,
VAE encoder of the same faces) and sweeps what a user can choose:

- attribute-vector edits z + s * attr(A), s in --scales: success and preservation, mean over attributes;
- the DCGAN analogy mean(A & ~Male) - mean(~A & ~Male) + mean(~A & Male) with n exemplars per concept, drawn
  at random, as matched sets on the labels (`--match`: the three groups' exemplars share every other attribute,
  facemath_core.latent.matching), and as matched sets on the oracle's reading of each face's render; the label-matched
  analogy also with the difference scaled (s * mean(A & ~Male) - s * mean(~A & ~Male) + mean(~A & Male)).

    python bench/arithmetic.py [--report docs/report] [--data data/heldout] [--scales 1,1.5,2,3] [--trials 40]
        [--draws random,matched,matched-oracle] [--analogy-scales 1,2] [--methods gan,hybrid,in-domain,vae]
        [--json arithmetic]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402

TARGET = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", default="docs/report")
    parser.add_argument("--data", default="data/heldout")
    parser.add_argument("--models", default="exported_models")
    parser.add_argument("--scales", default="1,1.5,2,3")
    parser.add_argument("--exemplars", default="1,3,5")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--draws", default="random,matched,matched-oracle")
    parser.add_argument("--analogy-scales", default="1,2", help="scales of the difference in the analogy")
    parser.add_argument("--json", default="arithmetic", help="results name: bench/results/<name>.json")
    parser.add_argument(
        "--methods", default="gan,hybrid,in-domain,vae", help="which latents_<method>.npz of --report to score"
    )
    args = parser.parse_args()

    from facemath_core.base import signatures as S
    from facemath_core.base.metrics import mean_ci, wilson
    from facemath_core.base.runtime import import_tensorflow_quietly
    from facemath_core.host.manager import load_registry
    from facemath_core.latent.quality import score_analogies, score_vectors
    from facemath_core.latent.space import open_space
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    import_tensorflow_quietly()
    backend, registry = EmbeddedBackend(args.models), load_registry()
    operators = {n: registry.get("operator", n) for n in registry.names("operator")}
    oracle_names = backend.metadata(S.ORACLE)["attribute_names"]
    edits, analogies = [], []
    methods = (
        ("gan", "GAN projection"),
        ("hybrid", "hybrid (encoder init)"),
        ("in-domain", "in-domain hybrid"),
        ("vae", "VAE encoder"),
    )
    chosen = args.methods.split(",")
    for slug, method in [m for m in methods if m[0] in chosen]:
        space = open_space([os.path.join(args.report, f"latents_{slug}.npz")], args.data)
        model = space.latents.model

        def render(z, model=model):
            return backend.generate(z, model)

        for scale in (float(s) for s in args.scales.split(",")):
            _, scores = score_vectors(space, render, backend.judge, oracle_names, scale=scale)
            judged = [s for s in scores if s.edited]
            success, preserved = mean_ci([s.success for s in judged]), mean_ci([s.preserved for s in judged])
            edits.append(
                {
                    "method": method,
                    "scale": scale,
                    "attributes": len(judged),
                    "edited faces": sum(s.edited for s in judged),
                    "success": success[0],
                    "± 95%": success[1],
                    "preserved": preserved[0],
                    "preserved ± 95%": preserved[1],
                    "attributes meeting both": sum(s.success >= TARGET and s.preserved >= TARGET for s in judged),
                }
            )
        print_table("attribute-vector edits", edits[-len(args.scales.split(",")) :])
        targets = [n for n in oracle_names if n != "Male" and not n.endswith("_Hair") and n in space.attribute_names]
        # The oracle's reading of every face's render: matching on it matches what the judge will see.
        judged = (list(oracle_names), backend.judge(render(space.z)) > 0)
        draws = {
            "random": {},
            "matched": {"match": True},
            "matched-oracle": {"match": True, "match_labels": judged},
        }
        # Scales other than 1 only for the label-matched draw: is the matched difference right but too short?
        runs = [(1.0, d, int(v)) for d in args.draws.split(",") for v in args.exemplars.split(",")]
        runs += [
            (float(s), "matched", int(v))
            for s in args.analogy_scales.split(",")
            if float(s) != 1.0
            for v in args.exemplars.split(",")
        ]
        for scale, draw, n in runs:
            scores = score_analogies(
                space, operators, render, backend.judge, oracle_names, targets, "Male", n, args.trials,
                scale=scale, **draws[draw],
            )  # fmt: skip
            hits = sum(round(s.success * s.trials) for s in scores)
            trials = sum(s.trials for s in scores)
            rate, low, high = wilson(hits, trials)
            analogies.append(
                {
                    "method": method,
                    "exemplars": n,
                    "draw": draw,
                    "scale": scale,
                    "trials": trials,
                    "success": rate,
                    "95% low": low,
                    "95% high": high,
                    "preserved": float(np.mean([s.preserved for s in scores])),
                    "targets meeting both": sum(s.success >= TARGET and s.preserved >= TARGET for s in scores),
                    "targets": len(scores),
                }
            )
        print_table("analogies", analogies[-len(runs) :])
    print_table("attribute-vector edits (mean over attributes)", edits)
    print_table("DCGAN analogies (pooled over target attributes; draw: random or matched exemplars)", analogies)
    write_json(
        args.json,
        {
            "target": TARGET,
            "methods": chosen,
            "faces": int(len(space.z)),
            "report": args.report,
            "edits": edits,
            "analogies": analogies,
        },
    )


if __name__ == "__main__":
    main()
