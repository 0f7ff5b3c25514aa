"""The GAN-vs-VAE report (`facemath compare`): the question the project was started for, answered with numbers.

On the same held-out labelled faces it runs three ways into latent space: GAN projection (amos2016 settings),
the VAE encoder, and the hybrid (projection started at the encoder's z, as in iGAN). For each it measures
reconstruction (PSNR, SSIM, L1, sharpness, oracle agreement, seconds per image), attribute vectors (AUC, success,
preservation) and the DCGAN paper's analogies with 1 and 3 exemplars per concept, then writes report.md and
report.html with figures. Every number comes with its sample size and a 95% interval.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from facemath_core import signatures as S
from facemath_core.arithmetic import Evaluator, LatentSpace, example_grid, work_out
from facemath_core.attribute_quality import analogy_expression, score_analogies, score_vectors
from facemath_core.dataset import open_faces
from facemath_core.errors import FacemathError
from facemath_core.files import to_json
from facemath_core.images import from_unit, load_images, save_png
from facemath_core.latents import Latents, save_latents
from facemath_core.metrics import l1, laplacian_variance, mean_ci, psnr, ssim, wilson
from facemath_core.projection import PRESETS, ProjectionConfig, Projector

METHODS = ("GAN projection", "hybrid (encoder init)", "VAE encoder")
SLUG = {"GAN projection": "gan", "hybrid (encoder init)": "hybrid", "VAE encoder": "vae"}


@dataclass(frozen=True)
class CompareConfig:
    count: int = 256
    steps: int = 1000
    exemplars: tuple[int, ...] = (1, 3)
    trials: int = 40  # analogies per target attribute and exemplar count
    held_out: float = 0.3  # share of the faces kept out of fitting attribute vectors
    pivot: str = "Male"
    seed: int = 0


# --- running ---------------------------------------------------------------------------------------------------


def load_faces(data: str | Path, count: int, size: int, seed: int):
    folder = open_faces(data)
    if folder.attributes is None:
        raise FacemathError(f"--data {data}: has no list_attr_celeba.txt; the report needs labelled faces")
    if count < 20:
        raise FacemathError(f"--count {count}: at least 20 faces")
    rows = np.arange(len(folder.paths))
    if count < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, count, replace=False))
    paths = [folder.paths[i] for i in rows]
    from facemath_core.images import to_unit

    return folder, paths, to_unit(load_images(paths, size)), folder.attributes[rows] > 0


def project_all(backend, registry, config: ProjectionConfig, targets: np.ndarray, progress: Callable[[str], None]):
    projector = Projector(backend, registry, config)
    zs = []
    for start in range(0, len(targets), config.batch_size):
        batch = targets[start : start + config.batch_size]
        z0 = projector.initial_z(batch, np.random.default_rng([config.seed, start]))
        zs.append(projector.project(batch, np.ones(batch.shape[:3], np.float32), z0).z)
        progress(f"  {min(start + config.batch_size, len(targets))}/{len(targets)} faces")
    return np.concatenate(zs)


def run_compare(data, backend, registry, cfg: CompareConfig, progress: Callable[[str], None] = print) -> dict:
    """Everything the report shows, as plain data (plus the arrays the figures need, under '_arrays')."""
    for model in (S.GENERATOR, S.DISCRIMINATOR, S.VAE_ENCODER, S.VAE_DECODER, S.ORACLE):
        if not backend.has(model):
            raise FacemathError(f"--models: the report needs the {model} model, and it is missing")
    size = backend.metadata(S.GENERATOR)["image_size"]
    folder, paths, images, labels = load_faces(data, cfg.count, size, cfg.seed)
    names = [p.name for p in paths]
    attribute_names = list(folder.attribute_names)
    oracle_names = backend.metadata(S.ORACLE)["attribute_names"]
    judged = [n for n in attribute_names if n in oracle_names]
    if cfg.pivot not in judged:
        raise FacemathError(f"--pivot {cfg.pivot}: not an attribute both the labels and the oracle know")
    judged_columns = [oracle_names.index(n) for n in judged]
    original_verdicts = backend.judge(images)[:, judged_columns] > 0
    registry_ops = {n: registry.get("operator", n) for n in registry.names("operator")}
    gan = ProjectionConfig(**{**PRESETS["amos2016"], "steps": cfg.steps}, preset="amos2016", seed=cfg.seed)

    results, arrays = {}, {"originals": images}
    for method in METHODS:
        progress(f"{method}: {len(images)} faces")
        start = time.perf_counter()
        if method == "VAE encoder":
            z = backend.encode(images)[0]
            family, decoder = "vae", S.VAE_DECODER
        else:
            config = gan if method == "GAN projection" else replace(gan, init="encoder")
            z = project_all(backend, registry, config, images, progress)
            family, decoder = "gan", S.GENERATOR
        seconds = (time.perf_counter() - start) / len(images)
        recon = backend.generate(z, decoder)
        verdicts = backend.judge(recon)[:, judged_columns] > 0
        latents = Latents(
            names=names,
            z=z,
            family=family,
            model=decoder,
            model_version=backend.version(decoder),
            source="encoder" if method == "VAE encoder" else "projection",
            config={"inputs": [str(p) for p in paths], "method": method},
            models={decoder: backend.version(decoder)},
        )
        space = LatentSpace(latents, attribute_names, labels, str(folder.root))

        def render(v, decoder=decoder):
            return backend.generate(v, decoder)

        _, vector_scores = score_vectors(
            space, render, backend.judge, oracle_names, held_out=cfg.held_out, seed=cfg.seed
        )
        targets = [n for n in judged if n != cfg.pivot and not n.endswith("_Hair")]
        analogies = {
            n: score_analogies(
                space, registry_ops, render, backend.judge, oracle_names, targets, cfg.pivot, n, cfg.trials, cfg.seed
            )
            for n in cfg.exemplars
        }
        sharp = laplacian_variance(recon) / np.maximum(laplacian_variance(images), 1e-12)
        results[method] = {
            "faces": len(images),
            "seconds_per_image": seconds,
            "psnr": mean_ci(psnr(recon, images)),
            "ssim": mean_ci(ssim(recon, images)),
            "l1": mean_ci(l1(recon, images)),
            "sharpness_ratio": mean_ci(sharp),
            "oracle_agreement": mean_ci((verdicts == original_verdicts).mean(axis=1)),
            "label_agreement": mean_ci((verdicts == labels[:, [attribute_names.index(n) for n in judged]]).mean(1)),
            "vectors": [s.as_dict() for s in vector_scores],
            "analogies": {str(n): [s.as_dict() for s in scores] for n, scores in analogies.items()},
        }
        arrays[method] = {"z": z, "recon": recon, "space": space, "render": render}
    return {
        "config": asdict(cfg),
        "data": str(Path(data)),
        "judged_attributes": judged,
        "models": {
            m: backend.version(m) for m in (S.GENERATOR, S.DISCRIMINATOR, S.VAE_ENCODER, S.VAE_DECODER, S.ORACLE)
        },
        "methods": results,
        "_arrays": arrays,
        "_operators": registry_ops,
    }


# --- summaries -------------------------------------------------------------------------------------------------


def vector_summary(scores: list[dict]) -> dict:
    judged = [s for s in scores if s["edited"]]
    return {
        "auc": mean_ci([s["auc"] for s in scores]),
        "attributes": len(scores),
        "success": mean_ci([s["success"] for s in judged]),
        "preserved": mean_ci([s["preserved"] for s in judged]),
        "edited_faces": sum(s["edited"] for s in judged),
    }


def analogy_summary(scores: list[dict]) -> dict:
    hits = sum(round(s["success"] * s["trials"]) for s in scores)
    trials = sum(s["trials"] for s in scores)
    return {"success": wilson(hits, trials), "trials": trials, "preserved": mean_ci([s["preserved"] for s in scores])}


def _ci(pair, digits=2) -> str:
    mean, half = pair
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"


def _rate(triple) -> str:
    rate, low, high = triple
    return f"{rate:.2f} [{low:.2f}, {high:.2f}]"


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


# --- figures ---------------------------------------------------------------------------------------------------


def _figures(result: dict, folder: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(result["methods"])
    arrays = result["_arrays"]
    colours = ["#4c72b0", "#55a868", "#c44e52"]
    files = {}

    # Reconstructions: originals and each method's image of the same eight faces.
    shown = np.arange(min(8, len(arrays["originals"])))
    rows = [("original", arrays["originals"])] + [(m, arrays[m]["recon"]) for m in methods]
    fig, axes = plt.subplots(len(rows), len(shown), figsize=(1.3 * len(shown), 1.4 * len(rows)), squeeze=False)
    for r, (label, pictures) in enumerate(rows):
        for c, i in enumerate(shown):
            axes[r, c].imshow(from_unit(pictures[i]))
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    files["reconstructions"] = "reconstructions.png"
    fig.savefig(folder / files["reconstructions"], dpi=110)
    plt.close(fig)

    # Reconstruction quality with 95% intervals.
    panels = [
        ("psnr", "PSNR (dB)"),
        ("ssim", "SSIM"),
        ("sharpness_ratio", "sharpness / original"),
        ("oracle_agreement", "oracle agreement"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 2.8))
    for ax, (key, title) in zip(axes, panels, strict=True):
        means = [result["methods"][m][key][0] for m in methods]
        errors = [result["methods"][m][key][1] for m in methods]
        ax.bar(range(len(methods)), means, yerr=errors, color=colours, capsize=3)
        ax.set_xticks(range(len(methods)), [SLUG[m] for m in methods])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    files["quality"] = "quality.png"
    fig.savefig(folder / files["quality"], dpi=110)
    plt.close(fig)

    # Attribute-vector AUC per attribute.
    attributes = [s["attribute"] for s in result["methods"][methods[0]]["vectors"]]
    fig, ax = plt.subplots(figsize=(11, 3))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        scores = {s["attribute"]: s for s in result["methods"][m]["vectors"]}
        auc = [scores[a]["auc"] if a in scores else np.nan for a in attributes]
        err = [1.96 * scores[a]["auc_se"] if a in scores else 0 for a in attributes]
        ax.bar(np.arange(len(attributes)) + j * width, auc, width, yerr=err, label=SLUG[m], color=colours[j], capsize=2)
    ax.set_xticks(np.arange(len(attributes)) + 0.4 - width / 2, attributes, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0.4, 1.02), ax.axhline(0.5, color="grey", lw=0.5), ax.set_ylabel("ROC AUC"), ax.legend(fontsize=7)
    fig.tight_layout()
    files["auc"] = "auc.png"
    fig.savefig(folder / files["auc"], dpi=110)
    plt.close(fig)

    # Arithmetic: attribute-vector edits and analogies with n exemplars.
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    labels = ["vector edit"] + [f"analogy n={n}" for n in result["config"]["exemplars"]]
    for j, m in enumerate(methods):
        entry = result["methods"][m]
        edit = vector_summary(entry["vectors"])
        summaries = [analogy_summary(entry["analogies"][str(n)]) for n in result["config"]["exemplars"]]
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
            color=colours[j],
            label=SLUG[m],
            capsize=2,
        )
        axes[1].bar(x, [p[0] for p in preserved], width, yerr=[p[1] for p in preserved], color=colours[j], capsize=2)
    for ax, title in zip(axes, ("success (oracle)", "other attributes preserved"), strict=True):
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, fontsize=8)
        ax.set_ylim(0, 1.05), ax.axhline(0.8, color="grey", lw=0.5, ls="--"), ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    files["arithmetic"] = "arithmetic.png"
    fig.savefig(folder / files["arithmetic"], dpi=110)
    plt.close(fig)

    # One worked analogy per method, drawn like the DCGAN paper.
    target = next(iter(result["methods"][methods[0]]["analogies"].values()))
    target = target[0]["target"] if target else None
    if target:
        expression = analogy_expression(target, result["config"]["pivot"])
        for m in methods:
            evaluator = Evaluator(arrays[m]["space"], result["_operators"], exemplars=3, seed=result["config"]["seed"])
            grid = example_grid(work_out(evaluator, expression, seed=result["config"]["seed"]), arrays[m]["render"])
            files[f"example_{SLUG[m]}"] = f"example_{SLUG[m]}.png"
            save_png(folder / files[f"example_{SLUG[m]}"], grid)
        files["example_expression"] = expression
    return files


# --- the documents ---------------------------------------------------------------------------------------------


def _blocks(result: dict, files: dict[str, str]) -> list[tuple[str, object]]:
    """The report as blocks (heading, text, table, image), rendered to both Markdown and HTML."""
    cfg, methods = result["config"], result["methods"]
    n = next(iter(methods.values()))["faces"]
    reconstruction = [
        {
            "method": m,
            "PSNR dB": _ci(e["psnr"]),
            "SSIM": _ci(e["ssim"], 3),
            "L1": _ci(e["l1"], 3),
            "sharpness / original": _ci(e["sharpness_ratio"]),
            "oracle agreement": _ci(e["oracle_agreement"], 3),
            "agreement with labels": _ci(e["label_agreement"], 3),
            "s / image": f"{e['seconds_per_image']:.3g}",
        }
        for m, e in methods.items()
    ]
    vectors = []
    for m, e in methods.items():
        s = vector_summary(e["vectors"])
        vectors.append(
            {
                "method": m,
                "mean AUC": _ci(s["auc"], 3),
                "attributes": s["attributes"],
                "edit success": _ci(s["success"]),
                "edit preserved": _ci(s["preserved"], 3),
                "edited faces": s["edited_faces"],
            }
        )
    per_attribute = []
    for attribute in [s["attribute"] for s in next(iter(methods.values()))["vectors"]]:
        row = {"attribute": attribute}
        for m, e in methods.items():
            score = next((s for s in e["vectors"] if s["attribute"] == attribute), None)
            row[f"{SLUG[m]} AUC"] = f"{score['auc']:.3f}" if score else "n/a"
            row[f"{SLUG[m]} success"] = f"{score['success']:.2f}" if score and score["edited"] else "n/a"
        per_attribute.append(row)
    analogies = []
    for m, e in methods.items():
        for k in cfg["exemplars"]:
            s = analogy_summary(e["analogies"][str(k)])
            analogies.append(
                {
                    "method": m,
                    "exemplars": k,
                    "trials": s["trials"],
                    "success": _rate(s["success"]),
                    "preserved": _ci(s["preserved"], 3),
                }
            )
    targets = sorted({s["target"] for e in methods.values() for v in e["analogies"].values() for s in v})
    blocks = [
        ("h1", "GAN projection vs VAE encoding: does face arithmetic work as well?"),
        (
            "p",
            f"{n} held-out labelled faces from `{result['data']}`; GAN projection uses the amos2016 settings "
            f"(contextual + 0.1 perceptual, Adam lr 0.01, clipping) for up to {cfg['steps']} steps; the hybrid starts "
            f"the same projection at the VAE encoder's z; the VAE row is the encoder's posterior mean. Models: "
            + ", ".join(f"{k} v{v}" for k, v in result["models"].items())
            + f". The attribute oracle judges every face. Intervals are 95%: mean ± t standard errors over faces "
            f"(or attributes; Student's t), and Wilson intervals for rates. Seed {cfg['seed']}.",
        ),
        ("h2", "Reconstruction"),
        ("table", reconstruction),
        (
            "p",
            f"n = {n} faces per method. Sharpness is the variance of the Laplacian of the reconstruction divided by "
            "that of the original (1 = as sharp). Oracle agreement: the share of attributes on which the oracle "
            "reads the reconstruction as it reads the original.",
        ),
        ("img", files["reconstructions"]),
        ("img", files["quality"]),
        ("h2", "Attribute vectors"),
        (
            "p",
            f"Vectors fitted on {1 - cfg['held_out']:.0%} of the faces (least squares over the labels: White's bias "
            "correction, leaving out attributes that never co-occur, such as two hair colours) and scored on the "
            f"other {cfg['held_out']:.0%}: AUC of z . v as a classifier, then the vector "
            "added once to held-out faces that lack the attribute: success = the oracle now sees it, preserved = the "
            "share of the other attributes it reads unchanged. Mean ± 95% interval over attributes.",
        ),
        ("table", vectors),
        ("table", per_attribute),
        ("img", files["auc"]),
        ("h2", "Analogies"),
        (
            "p",
            f"`mean(A & ~{cfg['pivot']}) - mean(~A & ~{cfg['pivot']}) + mean(~A & {cfg['pivot']})` for A in "
            f"{', '.join(targets)}, {cfg['trials']} trials each with different exemplars. Success: the oracle sees "
            f"both A and {cfg['pivot']} in the result; preserved: the other attributes (mutually exclusive ones "
            f"left out) match the render of mean(~A & {cfg['pivot']}).",
        ),
        ("table", analogies),
        ("img", files["arithmetic"]),
    ]
    if "example_expression" in files:
        blocks.append(("p", f"Worked example, 3 exemplars per concept: `{files['example_expression']}`"))
        for m in methods:
            blocks += [("p", f"{m}:"), ("img", files[f"example_{SLUG[m]}"])]
    return blocks


def _markdown(blocks) -> str:
    out = []
    for kind, content in blocks:
        if kind == "h1":
            out.append(f"# {content}")
        elif kind == "h2":
            out.append(f"## {content}")
        elif kind == "table":
            out.append(markdown_table(content))
        elif kind == "img":
            out.append(f"![{Path(content).stem}]({content})")
        else:
            out.append(content)
    return "\n\n".join(out) + "\n"


def _html(blocks) -> str:
    def inline(text: str) -> str:
        parts = html.escape(text).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{inline(content)}</{kind}>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(k)}</th>" for k in content[0])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in content
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            body.append(f'<p><img src="{html.escape(content)}" alt="{html.escape(Path(content).stem)}"></p>')
        else:
            body.append(f"<p>{inline(content)}</p>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}"
        "img{max-width:100%}"
    )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>facemath: GAN vs VAE</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(result: dict, folder: Path) -> None:
    """report.md, report.html, report.json, the figures, and each method's latents."""
    files = _figures(result, folder)
    blocks = _blocks(result, files)
    (folder / "report.md").write_text(_markdown(blocks))
    (folder / "report.html").write_text(_html(blocks))
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    (folder / "report.json").write_text(to_json(public))
    for method in result["methods"]:
        save_latents(folder / f"latents_{SLUG[method]}.npz", result["_arrays"][method]["space"].latents)
