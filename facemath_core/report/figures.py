"""The report's figures (matplotlib): reconstructions, quality and AUC bars, arithmetic success, worked examples,
and the lambda strip with `--lambdas`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemath_core.data.images import from_unit, save_png
from facemath_core.latent.arithmetic import Evaluator
from facemath_core.latent.quality import analogy_expression
from facemath_core.latent.worked_example import example_grid, work_out
from facemath_core.report.comparison import SLUG, CompareResult, analogy_summary, vector_summary

COLOURS = ["#4c72b0", "#55a868", "#8172b2", "#c44e52", "#dd8452", "#937860"]  # one per method


def draw_figures(compared: CompareResult, folder: Path) -> dict[str, str]:
    """Write the figures into `folder`; returns figure key -> file name (and the worked example's expression)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    for key, draw in (
        ("reconstructions", _reconstructions),
        ("quality", _quality),
        ("auc", _auc),
        ("arithmetic", _arithmetic),
        ("priors", _priors),
    ):
        fig = draw(plt, compared)
        fig.tight_layout()
        files[key] = f"{key}.png"
        fig.savefig(folder / files[key], dpi=110)
        plt.close(fig)
    files.update(_worked_examples(compared, folder))
    if compared.knob_strip is not None:  # `--lambdas`: face 0 across the lambdas swept
        files["lambda_strip"] = "lambda_strip.png"
        save_png(folder / files["lambda_strip"], compared.knob_strip)
    return files


def _reconstructions(plt, compared: CompareResult):
    """Originals and each method's image of the same eight faces."""
    shown = np.arange(min(8, len(compared.originals)))
    rows = [("original", compared.originals)] + [(m, compared.runs[m].recon) for m in compared.methods]
    fig, axes = plt.subplots(len(rows), len(shown), figsize=(1.3 * len(shown), 1.4 * len(rows)), squeeze=False)
    for r, (label, pictures) in enumerate(rows):
        for c, i in enumerate(shown):
            axes[r, c].imshow(from_unit(pictures[i]))
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=7)
    return fig


def _quality(plt, compared: CompareResult):
    """Reconstruction quality with 95% intervals."""
    methods = list(compared.methods)
    panels = [
        ("psnr", "PSNR (dB)"),
        ("ssim", "SSIM"),
        ("sharpness_ratio", "sharpness / original"),
        ("frechet", "realism: Frechet (lower = realer)"),
        ("oracle_agreement", "oracle agreement"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 2.8))
    for ax, (key, title) in zip(axes, panels, strict=True):
        means = [compared.methods[m][key][0] for m in methods]
        errors = [compared.methods[m][key][1] for m in methods]
        ax.bar(range(len(methods)), means, yerr=errors, color=COLOURS[: len(methods)], capsize=3)
        ax.set_xticks(range(len(methods)), [SLUG[m] for m in methods], rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
    return fig


def _priors(plt, compared: CompareResult):
    """Eight prior samples of each decoder, captioned with their Frechet distance to the real faces."""
    rows = [(r, compared.priors[r["model"]]) for r in compared.realism["prior_samples"]]
    columns = max(len(samples) for _, samples in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.3 * columns, 1.5 * len(rows)), squeeze=False)
    for r, (record, samples) in enumerate(rows):
        for c in range(columns):
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if c < len(samples):
                axes[r, c].imshow(from_unit(samples[c]))
        value, half = record["frechet"]
        axes[r, 0].set_ylabel(f"{record['model']}\nFrechet {value:.1f} ± {half:.1f}", fontsize=7)
    return fig


def _auc(plt, compared: CompareResult):
    """Attribute-vector AUC per attribute."""
    methods = list(compared.methods)
    attributes = [s["attribute"] for s in compared.methods[methods[0]]["vectors"]]
    fig, ax = plt.subplots(figsize=(11, 3))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        scores = {s["attribute"]: s for s in compared.methods[m]["vectors"]}
        auc = [scores[a]["auc"] if a in scores else np.nan for a in attributes]
        err = [1.96 * scores[a]["auc_se"] if a in scores else 0 for a in attributes]
        ax.bar(np.arange(len(attributes)) + j * width, auc, width, yerr=err, label=SLUG[m], color=COLOURS[j], capsize=2)
    ax.set_xticks(np.arange(len(attributes)) + 0.4 - width / 2, attributes, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0.4, 1.02), ax.axhline(0.5, color="grey", lw=0.5), ax.set_ylabel("ROC AUC"), ax.legend(fontsize=7)
    return fig


def _arithmetic(plt, compared: CompareResult):
    """Attribute-vector edits and analogies with n exemplars: success and preservation."""
    methods, exemplars = list(compared.methods), compared.config.exemplars
    width = 0.8 / len(methods)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    labels = ["vector edit"] + [f"analogy n={n}" for n in exemplars]
    for j, m in enumerate(methods):
        entry = compared.methods[m]
        edit = vector_summary(entry["vectors"])
        summaries = [analogy_summary(entry["analogies"][str(n)]) for n in exemplars]
        # (value, error below, error above): a t interval for edits, Wilson intervals for analogies.
        success = [(edit["success"][0], edit["success"][1], edit["success"][1])] + [
            (s["success"][0], s["success"][0] - s["success"][1], s["success"][2] - s["success"][0]) for s in summaries
        ]
        preserved = [edit["preserved"]] + [s["preserved"] for s in summaries]
        x = np.arange(len(labels)) + j * width
        axes[0].bar(
            x,
            [v for v, _, _ in success],
            width,
            yerr=[[lo for _, lo, _ in success], [hi for _, _, hi in success]],
            color=COLOURS[j],
            label=SLUG[m],
            capsize=2,
        )
        axes[1].bar(x, [p[0] for p in preserved], width, yerr=[p[1] for p in preserved], color=COLOURS[j], capsize=2)
    for ax, title in zip(axes, ("success (oracle)", "other attributes preserved"), strict=True):
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, fontsize=8)
        ax.set_ylim(0, 1.05), ax.axhline(0.8, color="grey", lw=0.5, ls="--"), ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    return fig


def _worked_examples(compared: CompareResult, folder: Path) -> dict[str, str]:
    """One worked analogy per method, drawn like the DCGAN paper (none when no analogy was scored)."""
    methods = list(compared.methods)
    scored = next(iter(compared.methods[methods[0]]["analogies"].values()))
    if not scored:
        return {}
    expression = analogy_expression(scored[0]["target"], compared.config.pivot)
    files = {"example_expression": expression}
    for m in methods:
        run = compared.runs[m]
        evaluator = Evaluator(run.space, compared.operators, exemplars=3, seed=compared.config.seed)
        grid = example_grid(work_out(evaluator, expression, seed=compared.config.seed), run.render)
        files[f"example_{SLUG[m]}"] = f"example_{SLUG[m]}.png"
        save_png(folder / files[f"example_{SLUG[m]}"], grid)
    return files
