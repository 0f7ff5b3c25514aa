"""The GAN-vs-VAE report as documents: report.md, report.html and report.json with the figures and latents.

The numbers come from `report.comparison`, the figures from `report.figures`; this module lays
them out once as blocks (heading, text, table, image) and renders the blocks to Markdown and to HTML.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from facemath_core.base.files import atomic_dir, to_json
from facemath_core.base.tables import markdown_table
from facemath_core.latent.latents import save_latents
from facemath_core.report.comparison import (
    BOOTSTRAP_ROUNDS,
    SLUG,
    CompareResult,
    analogy_summary,
    standings,
    vector_summary,
)
from facemath_core.report.figures import draw_figures
from facemath_core.report.knob import knob_finding

BOOTSTRAP = f"{BOOTSTRAP_ROUNDS} resamples of the faces"


def _ci(pair, digits=2) -> str:
    mean, half = pair
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"


def _seconds(entry: dict) -> str:
    """Seconds per image; a fed method's come from its own run (`projection_seconds`), marked so."""
    seconds = entry["seconds_per_image"]
    if seconds is None:
        return "n/a"
    return f"{seconds:.3g}" + (" (fed)" if "latents_from" in entry else "")


def _rate(triple) -> str:
    rate, low, high = triple
    return f"{rate:.2f} [{low:.2f}, {high:.2f}]"


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
            "realism (Frechet)": _ci(e["frechet"], 1),
            "oracle agreement": _ci(e["oracle_agreement"], 3),
            "agreement with labels": _ci(e["label_agreement"], 3),
            "s / image": _seconds(e),
        }
        for m, e in methods.items()
    ]
    realism = result["realism"]
    priors = [
        {
            "samples of": f"{r['model']} v{r['version']}",
            "prior": {"uniform": "U(-1, 1)", "normal": "N(0, I)"}.get(r["prior"], r["prior"]),
            "n": r["samples"],
            "realism (Frechet)": _ci(r["frechet"], 1),
        }
        for r in realism["prior_samples"]
    ]
    floor = realism["real_halves"]
    fed = {m: e["latents_from"] for m, e in methods.items() if "latents_from" in e}
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
        if e.get("matched_analogies"):  # one matched set per group (`--match` on the labels)
            s = analogy_summary(e["matched_analogies"])
            analogies.append(
                {
                    "method": m,
                    "exemplars": "1, matched",
                    "trials": s["trials"],
                    "success": _rate(s["success"]),
                    "preserved": _ci(s["preserved"], 3),
                }
            )
    targets = sorted({s["target"] for e in methods.values() for v in e["analogies"].values() for s in v})
    verdict_rows, verdict_sentences = _verdict(methods, cfg["exemplars"])
    blocks = [
        ("h1", "GAN projection vs VAE encoding: does face arithmetic work as well?"),
        (
            "p",
            f"{n} labelled faces from `{result['data']}` ({result.get('faces_used', 'held-out')}); "
            f"GAN projection uses the amos2016 settings "
            f"(contextual + 0.1 perceptual, Adam lr 0.01, clipping) for up to {cfg['steps']} steps; the hybrid starts "
            f"the same projection at the z of the gan_encoder trained to invert this generator (iGAN's hybrid); the "
            f"in-domain hybrid adds the in-domain term ||z - E(G(z))||^2 (Zhu et al. 2020, weight 10); "
            f"the VAE and VAE-GAN rows are their encoders' posterior means; the VAE-GAN hybrid runs the amos2016 "
            f"projection through the VAE-GAN's decoder (judged by its own discriminator) from its encoder's z "
            f"(Larsen et al. 2016). Models: "
            + ", ".join(f"{k} v{v}" for k, v in result["models"].items())
            + f". The attribute oracle judges every face. Intervals are 95%: mean ± t standard errors over faces "
            f"(or attributes; Student's t), Wilson intervals for rates, and ± 1.96 bootstrap standard errors "
            f"({BOOTSTRAP}) for Frechet distances. Seed {cfg['seed']}."
            + (
                " Projections fed from earlier runs (`--latents`, checked to match these settings): "
                + "; ".join(f"{m}: `{path}`" for m, path in fed.items())
                + "; their seconds per image (marked fed) are those runs' own wall times per face, including "
                "whatever else shared the machine while they ran."
                if fed
                else ""
            ),
        ),
        ("h2", "Verdict"),
        ("table", verdict_rows),
        ("p", " ".join(verdict_sentences)),
        ("h2", "Reconstruction"),
        ("table", reconstruction),
        (
            "p",
            f"n = {n} faces per method. Sharpness is the variance of the Laplacian of the reconstruction divided by "
            "that of the original (1 = as sharp). Realism: the Frechet distance between the attribute oracle's "
            "penultimate-layer features (128 per face) of the real faces and of the reconstructions, FID's recipe "
            "with the oracle as the feature network (not Inception: these numbers compare the methods here, not "
            "with published FIDs); 0 = the same population, lower is more realistic. Oracle agreement: the share "
            "of attributes on which the oracle reads the reconstruction as it reads the original.",
        ),
        ("img", files["reconstructions"]),
        ("img", files["quality"]),
        ("h2", "Realism of the models' own faces"),
        (
            "p",
            "Each decoder's prior samples (z drawn from the prior its export names, as many as there are faces) "
            "against the same real faces, in the same features. For scale, two random halves of the real faces "
            f"({floor['faces']} each) are {_ci(floor['frechet'], 1)} apart: sampling noise alone, at half the size "
            "(the estimate's bias grows as sets shrink).",
        ),
        ("table", priors),
        ("img", files["priors"]),
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
            f"left out) match the render of mean(~A & {cfg['pivot']}). `1, matched`: one exemplar per group drawn as "
            "matched sets on the labels (`facemath math --match`: the three faces agree on every labelled attribute "
            "but A and the pivot); targets without such sets are left out.",
        ),
        ("table", analogies),
        ("img", files["arithmetic"]),
    ]
    if "example_expression" in files:
        blocks.append(("p", f"Worked example, 3 exemplars per concept: `{files['example_expression']}`"))
        for m in methods:
            blocks += [("p", f"{m}:"), ("img", files[f"example_{SLUG[m]}"])]
    if "lambda_knob" in result:
        blocks += _knob_blocks(result["lambda_knob"], n, cfg, files)
    return blocks


def _verdict(methods: dict, exemplars) -> tuple[list[dict], list[str]]:
    """Who leads on each measure (ties: overlapping 95% intervals), then one sentence per method."""
    rows = standings(methods, exemplars)
    table = [
        {"measure": r["measure"], "leads": r["leader"], "tied with the leader": ", ".join(r["tied"]) or "none"}
        for r in rows
    ]
    sentences = []
    for m in methods:
        leads = [r["measure"] for r in rows if r["leader"] == m]
        ties = [r["measure"] for r in rows if m in r["tied"]]
        behind = len(rows) - len(leads) - len(ties)
        parts = []
        if leads:
            parts.append(f"leads on {', '.join(leads)}")
        if ties:
            parts.append(f"ties the leader on {', '.join(ties)}")
        parts.append(f"is behind on {behind} of {len(rows)} measures" if behind else "is behind on none")
        sentences.append(f"{m}: {'; '.join(parts)}.")
    return table, sentences


def _knob_blocks(knob: dict, n: int, cfg: dict, files: dict[str, str]) -> list[tuple[str, object]]:
    """`--lambdas`: the perceptual weight swept on the same faces, projection and center-mask completion."""
    table = [
        {
            "mode": r["mode"],
            "lambda (sum)": f"{r['lambda (sum)']:g}",
            "lambda (mean)": f"{r['lambda (mean)']:.3g}",
            "known PSNR dB": _ci((r["known PSNR dB"], r["PSNR ci95"])),
            "D(G(z))": _ci((r["D(G(z))"], r["D ci95"]), 3),
            "oracle agreement": _ci((r["oracle agreement"], r["agreement ci95"]), 3),
            "perceptual share": f"{r['perceptual share']:.2g}",
        }
        for r in knob["rows"]
    ]
    findings = [knob_finding([r for r in knob["rows"] if r["mode"] == mode]) for mode in knob["modes"]]
    return [
        ("h2", "The lambda knob"),
        (
            "p",
            f"The GAN projection's objective is contextual + lambda x perceptual (amos2016: the contextual L1 summed "
            f"over the known pixel values, the perceptual term -log D(G(z)), lambda 0.1). The same {n} faces, "
            f"{cfg['steps']} steps each, at lambda {', '.join(f'{v:g}' for v in knob['lambdas'])} (0 drops the "
            "term), as projection (every pixel known) and as completion (the center mask). `lambda (mean)` is the "
            "same weight on the mean scale (`--param contextual.reduce=mean`): lambda_sum / known pixel values. "
            "Known PSNR: over the known pixels; D(G(z)): the discriminator's realism score, sigmoid of its logit "
            f"(the faces themselves: {_ci(knob['input_realism'], 3)}); oracle agreement as above; perceptual share: "
            "lambda x (-log D(G(z))) / the whole objective at the end. n = "
            f"{n} faces per row, 95% intervals.",
        ),
        ("table", table),
        ("p", " ".join(findings)),
        ("img", files["lambda_strip"]),
    ]


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


def write_report(compared: CompareResult, out: Path) -> None:
    """Publish the folder `out` whole: report.md, report.html, report.json, the figures and each method's latents."""
    summary = compared.summary()
    with atomic_dir(out) as folder:
        blocks = _blocks(summary, draw_figures(compared, folder))
        (folder / "report.md").write_text(_markdown(blocks))
        (folder / "report.html").write_text(_html(blocks))
        (folder / "report.json").write_text(to_json(summary))
        for method, run in compared.runs.items():
            save_latents(folder / f"latents_{SLUG[method]}.npz", run.space.latents)
