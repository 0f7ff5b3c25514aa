"""Write docs/benchmarks.md from the JSON the benchmarks left in bench/results/, so the page never drifts from
the measurements.

    python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

from facemath_core.base.tables import markdown_table
from facemath_core.report.knob import REALER_D  # the report's own threshold: both say the same

ROOT = Path(__file__).parent.parent
RESULTS = Path(__file__).parent / "results"


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def table(rows: list[dict]) -> str:
    return markdown_table(rows, cell=cell) + "\n"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    parts = [
        "# Benchmarks\n",
        "Written by `python bench/report.py` from `bench/results/*.json`; each section names the command that "
        "measured it. Machine: 2 CPU cores, no GPU, shared (numbers move by 10-20% between runs; ratios are "
        "measured within one run).\n",
    ]
    synth = load("synth")
    if synth:
        parts += [
            "## Rendering labelled faces\n",
            "`python bench/synth.py` (CPU time of one process: one core; "
            f"target >= {synth['target_faces_per_second_64']} faces/s at 64x64), {synth['written']}\n",
            table(synth["rows"]),
        ]
    models = load("models")
    if models:
        parts += [
            "## Shipped models: mode collapse and training throughput\n",
            f"`python bench/models.py`, {models['written']}. Attribute frequencies judged by the oracle on "
            f"{models['samples']} samples; `labels` is the training data's ground truth.\n",
            table(models["frequencies"]),
            f"\nLargest |GAN - data| frequency gap: {models['max_frequency_gap']:.3f}. Distinct attribute "
            f"combinations among the samples: data {models['distinct_attribute_combinations']['data']}, "
            f"GAN {models['distinct_attribute_combinations']['GAN']}.\n",
            f"\nTraining throughput, batch 64; matmul peak measured in the same run: "
            f"{models['matmul_peak_gflops']:.1f} GFLOP/s (target >= 60% for the GAN).\n",
            table(models["throughput"]),
        ]
    projection = load("projection")
    if projection:
        parts += [
            "## Projection\n",
            f"`python bench/projection.py --faces {projection['faces']} --steps {projection['steps']}`, "
            f"{projection['written']}: held-out labelled faces (the held-out partition of the training "
            "render), PSNR / SSIM of G(z) against the image (mean and standard deviation over faces).\n",
            table(projection["quality"]),
            "\nz recovery of generated images (share of images whose recovered z is within MSE 1e-2 of the true z):\n",
            table(projection["recovery"]),
            *speed_section(projection["speed"]),
        ]
        if "models" in projection and "gan_encoder" not in projection["models"]:
            parts.append(
                "\nThe `+ encoder init` rows of this run predate `gan_encoder`: they start from the VAE encoder's z, "
                "a point of another latent space. The true hybrid is measured in the next section.\n"
            )
    parts += hybrid_section(load("hybrid"))
    parts += lambda_section(load("lambda"))
    parts += serving_section(load("serving"))
    arithmetic = load("arithmetic")
    if arithmetic:
        parts += [
            "## Face arithmetic\n",
            f"`python bench/arithmetic.py`, {arithmetic['written']}: the latents of the {arithmetic['faces']} "
            f"held-out faces in `{arithmetic['report']}` (written by `facemath compare`), judged by the attribute "
            f"oracle. Target: success >= {arithmetic['target']:.0%} with the other attributes preserved >= "
            f"{arithmetic['target']:.0%}. Attribute vectors are fitted on 70% of the faces and added, times "
            "`scale`, to held-out faces without the attribute (mean over attributes, 95% interval):\n",
            table(arithmetic["edits"]),
            "\nThe DCGAN analogy mean(A & ~Male) - mean(~A & ~Male) + mean(~A & Male), pooled over the target "
            "attributes (Wilson 95% interval). `draw`: the exemplars drawn at random from each group, as matched "
            "sets on the labels (`--match`: the three groups' exemplars share every other attribute), or as "
            "matched sets on the oracle's reading of each face's render; the same trials and seeds for all three:\n",
            table(arithmetic["analogies"]),
        ]
        if any(row["trials"] == 0 for row in arithmetic["analogies"]):
            parts.append(
                "\nRows with 0 trials (nan): among these faces no target has that many matched sets, so the draw "
                "cannot be made; matched rows with fewer targets than the random rows pool only the targets that "
                "have matched sets, so compare them with care.\n"
            )
    wide = load("arithmetic_wide")
    if wide:
        parts += [
            "\n### More faces: matched analogies on every held-out face\n",
            f"`python bench/arithmetic.py --report DIR --methods {','.join(wide['methods'])} --json arithmetic_wide`, "
            f"{wide['written']}: {wide['faces']} held-out faces (all of the held-out render, not only the report's "
            "128), projected with `facemath project --init encoder --preset amos2016 --steps 1000` (the hybrid) and "
            "encoded with `facemath encode` (VAE), so that more targets have matched sets and larger ones. The same "
            "measures as above:\n",
            table(wide["analogies"]),
        ]
    recovery = load("z_recovery")
    if recovery:
        summaries = recovery["summaries"]
        first, dim = summaries[0], recovery["z_dim"]
        models = ", ".join(f"`{name}/{version}`" for name, version in recovery["models"].items())
        parts += [
            "## Why z is (not) recovered\n",
            f"`python bench/z_recovery.py --count {first['images']} --steps {first['steps']} --inits "
            f"{','.join(s['init'] for s in summaries)}`, {recovery['written']}: the Jacobian dG/dz of the shipped "
            f"generator ({models}, z {dim}-d) at {first['images']} z's from the prior, and the same generated images "
            f"projected back (clip, {first['steps']} steps, from each start); see docs/models.md. Singular values as "
            "the image RMS change (on [-1, 1]) per unit step of z along each singular direction, median over z:\n",
            table([recovery["spectrum"]]),
            f"\nEffective rank: z directions (of {dim}) that move the image by more than a threshold:\n",
            table(recovery["effective_rank"]),
            f"\nz recovery, over all {dim} directions (the issue's measure) and in the row space only (directions "
            "along which a z error of 0.1 moves the image by more than one grey level RMS, 2/255):\n",
            table([{k: v for k, v in s.items() if k not in ("images", "steps", "constraint")} for s in summaries]),
        ]
    recon = load("latent_recon")
    if recon:
        rows = recon["rows"]
        parts += [
            "\nThe fix on a tiny GAN (32x32, z 32-d, ngf = ndf = 16, "
            f"{rows[0]['train steps']} steps, one seed): `python bench/latent_recon.py`, {recon['written']}. "
            "Weight 0 is the Radford recipe; otherwise the generator loss adds weight x ||Q(G(z)) - z||^2 "
            "(InfoGAN-style). z recovery of 16 generated images by projection (pixel loss, Adam 0.01, clip):\n",
            table(rows),
        ]
    parts += hmc_section(load("hmc"))
    parts += real_photos_section(
        load("real_photos_calibration"),
        load("real_photos_timing"),
        load("real_photos_astronaut"),
        load("real_photos_ood"),
    )
    parts += scale_section(load("scale"), load("gpu"), load("gpu-tiny"))
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'docs' / 'benchmarks.md'}")


def real_photos_section(calibration, timing, astronaut, ood) -> list[str]:
    """Real photos (issue 26): detection + alignment time, the held-out PSNR quantiles every export records, the
    astronaut aligned against squashed, and the out-of-domain rates."""
    if not any((calibration, timing, astronaut, ood)):
        return []
    parts = ["## Real photos\n"]
    if timing:
        parts += [
            f"Detection (MTCNN) + alignment per photo, warm: `python bench/real_photos.py --phase timing`, "
            f"{timing['written']}, {timing['rounds']} interleaved rounds on the 2 shared cores"
            + (
                f" (load average {', '.join(map(str, timing['load_average']))} while measured)"
                if "load_average" in timing
                else ""
            )
            + ":\n",
            table(timing["rows"]),
        ]
    if calibration:
        rows = [
            {
                "model": name,
                "measured by": m["method"],
                "faces": m["faces"],
                **{f"q{k}": v for k, v in m["quantiles"].items()},
            }
            for name, m in calibration["models"].items()
        ]
        parts += [
            f"\nHeld-out reconstruction PSNR (dB), the quantiles each export's metadata records: `python "
            f"bench/real_photos.py --phase calibrate`, {calibration['written']}, on the {calibration['data']}. "
            "`projection`: `facemath project` with its defaults; `encoder`: the encoder's round trip:\n",
            table(rows),
        ]
    if astronaut:
        r = astronaut["results"]
        rows = [
            {"input": "squashed (the whole frame resized)", "command": "project", **r["squashed"]},
            {"input": "aligned", "command": "project --align", **r["aligned"]},
            {"input": "aligned", "command": "encode --align", **r["aligned_vae"]},
        ]
        parts += [
            f"\nscikit-image's astronaut with the shipped models and default settings: `python bench/real_photos.py "
            f"--phase astronaut`, {astronaut['written']} ([picture]({astronaut['picture'].removeprefix('docs/')})):\n",
            table(rows),
        ]
    if ood:
        rows = [
            {
                "faces": name.split("/")[1],
                "command": name.split("/")[0],
                "count": v["faces"],
                "judged by": v["judged_by"],
                "out of domain": v["out_of_domain"],
                "rate": v["rate"],
                "PSNR mean": v["psnr_mean"],
                "PSNR median": v["psnr_quantiles"]["0.5"],
            }
            for name, v in ood["results"].items()
        ]
        parts += [
            f"\nOut-of-domain rates (target: >= 95% of real faces, <= 2% of held-out synthetic ones): `python "
            f"bench/real_photos.py --phase ood`, {ood['written']}; synthetic: `{ood['synthetic']}`; "
            f"LFW: {ood['lfw']}:\n",
            table(rows),
        ]
    return parts


def hmc_section(hmc: dict | None) -> list[str]:
    """bench/hmc.py (issue 31): HMC completions from the Adam completion, per sampler setting."""
    if not hmc:
        return []
    adam, settings = hmc["adam"], hmc["settings"]
    amos = settings[0]
    fastest = max(settings, key=lambda s: s["ESS/s (sum of per-face median ESS)"])
    widest = max(settings, key=lambda s: s["spread in hole"])

    def rate(setting: dict) -> float:
        return setting["ESS/s (sum of per-face median ESS)"]

    def short(setting: dict) -> str:
        return setting["setting"].removeprefix("beta 0.2, ")

    known_spread = max(s["spread of known pixels (blended)"] for s in settings)
    return [
        "## Sampling completions (HMC)\n",
        f"`python bench/hmc.py --faces {hmc['faces']} --samples {hmc['samples']} --burn-in {hmc['burn_in']}`, "
        f"{hmc['written']} (`bench/results/hmc.json`): {hmc['faces']} held-out faces of the training render, the "
        f"shipped generator, center mask. First the Adam completion as `facemath complete --mask center` runs it "
        f"({adam['config']['steps']} steps, {', '.join(adam['config']['losses'])}), then, from its z, "
        f"{hmc['samples']} samples per face (after {hmc['burn_in']} proposals of burn-in, thin 1) with each setting "
        "of the built-in `hmc` sampler, all faces' chains in one batch (`sample_run`, as `complete --sampler hmc` "
        f"runs it; one energy gradient of the batch took {hmc['energy gradient seconds (batch)'] * 1000:.0f} ms). "
        "`s`: wall seconds of the optimisation or of the sampling. Acceptance: per face, median and range. ESS: "
        "effective sample size of each z dimension of each face's chain (Geyer's initial positive sequence on the "
        "kept samples); `ESS/face` is the median over faces of the median over dimensions, `ESS/s` the sum over "
        "faces of that per-face ESS / `s` (the JSON also has the minimum over dimensions). `z moved`: RMS distance "
        "of a sample's z from the Adam z (median over faces). `std in hole` / `std known`: mean per-pixel "
        "standard deviation over the samples of the blended completions (on [-1, 1], averaged over colour) inside "
        "the hole and over the known pixels. `known PSNR`: G(z) against the input on the known pixels; `hole "
        "PSNR`: the completion against the original face inside the hole (samples: mean over samples; `of mean`: "
        f"the mean of a face's samples).{load_words(hmc)}\n",
        table(hmc["rows"]),
        f"\nAmos' setting (eps {amos['params']['eps']:g}, L {amos['params']['L']}) accepts nearly every proposal "
        f"(median {amos['acceptance']['median']:.2f}) but moves z by only "
        f"{amos['z RMS distance from Adam z']['median']:.2f} RMS in {amos['sampling seconds']:.0f} s, "
        f"{rate(amos):.2f} effective samples per second; {short(fastest)} gives {rate(fastest):.2f} ESS/s, "
        f"{rate(fastest) / rate(amos):.1f}x as many, because a proposal costs {fastest['params']['L']} gradients "
        f"instead of {amos['params']['L']}. With {hmc['samples']} samples per chain and a per-face ESS of a few, "
        "these chains are far from mixed and the ESS figures are rough (the estimator needs chains much longer than "
        "their autocorrelation time). The samples differ where they should: the hole's per-pixel spread is "
        f"{widest['spread in hole']:.3f} at the widest ({short(widest)}) while every known pixel stays the input's "
        f"(spread at most {known_spread:.1g}, float32 rounding of the blend). The price of leaving the mode is a "
        f"known-pixel PSNR {amos['known PSNR drop vs Adam dB']['median']:.1f} dB (median) under the Adam "
        f"completion's {adam['known PSNR dB']['median']:.1f} dB for Amos' setting; inside the hole single samples "
        f"are further from the original face than the Adam completion ({amos['hole PSNR samples dB']['median']:.1f} "
        f"against {adam['hole PSNR dB']['median']:.1f} dB, medians over faces), and the mean of the samples comes "
        f"back to about the Adam completion ({amos['hole PSNR sample mean dB']['median']:.1f} dB): the samples are "
        "other plausible fills around the optimum, not better guesses of the hidden truth.\n",
    ]


def ranged(s: dict) -> str:
    """A measurement taken in rounds: its median and, in brackets, its range."""
    return f"{cell(s['median'])} ({cell(s['min'])}-{cell(s['max'])})"


def speed_section(speed: dict) -> list[str]:
    """bench/projection.py's speed: facemath's steps against a bare tf.function loop, interleaved rounds."""
    rows = [
        {
            "batch": r["batch"],
            "steps a round": r["steps"],
            "facemath image-steps/s": ranged(r["facemath image-steps/s"]),
            "bare loop image-steps/s": ranged(r["bare loop image-steps/s"]),
            "facemath / bare": ranged(r["facemath / bare"]),
            "traced again after warm-up": sum(r["retraced after warm-up"].values()),
        }
        for r in speed["rows"]
    ]
    moved = speed["host_transfers"]
    return [
        f"\nSpeed (`python bench/projection.py --only speed`, {speed['written']}): facemath's projection steps (a "
        "`ProjectionRun` into memory, amos2016: contextual + 0.1 perceptual, Adam 0.01, clip) against a bare "
        "`tf.function` loop doing the same forward and backward passes through the same SavedModels and nothing "
        f"else, in {speed['rounds']} interleaved rounds after a warm-up; median (range). Target: facemath / bare "
        f">= 0.95 at batch 1 and 64.{load_words(speed)}\n",
        table(rows),
        f"\nHost transfers of a 1000-step run (device values read by Python, variables set from Python): "
        f"{moved['reads']} reads and {moved['writes']} writes, {moved['reads/step']:.3g} and "
        f"{moved['writes/step']:.3g} per step (before issue 27: 8 reads and 1 write every step).\n",
        f"\nShare of this machine's matmul peak at batch {speed['peak'][0]['batch']} (peak in the same run "
        f"{speed['matmul_peak_gflops']:.1f} GFLOP/s; target >= 70%)"
        + (
            ": more than 1, so the peak was measured while the machine was busier than during the steps, and the "
            "share says nothing this time:\n"
            if speed["peak"][0]["share of matmul peak"] > 1
            else ":\n"
        ),
        table(speed["peak"]),
    ]


def load_words(measured: dict) -> str:
    """How busy the shared machine was while measured (load average at the start and the end), when recorded."""
    load = measured.get("load_average")
    return f" Load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end (2 cores)." if load else ""


def serving_section(serving: dict | None) -> list[str]:
    """bench/serving.py: remote against embedded in interleaved rounds, bytes and RPCs per step."""
    if not serving:
        return []
    return [
        "## Serving\n",
        f"`python bench/serving.py --steps {serving['steps']} --rounds {serving['rounds']}`, {serving['written']}: "
        "the stand-in server on loopback, on the same two shared cores as the client; each projection a "
        "`ProjectionRun`; per batch size, a warm-up, then rounds of embedded and remote in turn (the order flipping "
        "every round): median remote / embedded with its range. MiB/step: request and answer protos, both "
        "directions (before issue 27: 1.01 MiB at batch 16 and 4.05 MiB at batch 64 for the projector path, float32 "
        "targets and mask). Targets: projector / embedded >= 0.9 at batch 16 and 64; at most a third of 4.05 MiB "
        f"per step at batch 64.{load_words(serving)}\n",
        table(serving["table"]),
        "\nConcurrent clients:\n",
        table(serving["concurrency"]),
    ]


def hybrid_section(hybrid: dict | None) -> list[str]:
    """bench/hybrid.py: PSNR against steps and wall seconds for uniform init, the true hybrid and in-domain."""
    if not hybrid:
        return []
    marks = (0, 100, 200, 300, 500, hybrid["steps"])
    summary = {row["method"]: row for row in hybrid["summary"]}
    rows = []
    for method, curve in hybrid["curves"].items():
        at = {point["steps"]: point["PSNR dB"] for point in curve}
        row = {"start": method}
        row.update({f"PSNR at {k} steps": round(at[k], 1) for k in marks if k in at})
        row[f"wall s for {hybrid['steps']} steps"] = round(summary[method]["seconds"], 1)
        rows.append(row)
    reach = {row["method"]: row for row in hybrid["time_to_reach"]}
    goal = next(key for key in reach["uniform init"] if key.startswith("seconds to"))
    hybrid_reach = reach["encoder init (hybrid)"]
    best_method = max((m for m in summary if m != "encoder alone"), key=lambda m: summary[m]["PSNR dB"])
    share = hybrid_reach["share of uniform's time"]
    return [
        "## The hybrid: encoder init\n",
        f"`python bench/hybrid.py --faces {hybrid['faces']} --steps {hybrid['steps']}`, {hybrid['written']} "
        f"(`bench/results/hybrid.json`): {hybrid['faces']} held-out faces of the training render, the shipped "
        + ", ".join(f"`{name}/{version}`" for name, version in hybrid["models"].items())
        + ", amos2016 (contextual + 0.1 perceptual, Adam 0.01, clip) from three starts in one run, embedded backend. "
        "Wall seconds include the encoder's forward pass for the encoder starts; PSNR is of G(best z so far), "
        "computed off the clock. The full curves are in the JSON.\n",
        table(rows),
        f"\n- The encoder alone (G(E(x)), one forward pass, {summary['encoder alone']['seconds'] * 1000:.0f} ms for "
        f"{hybrid['faces']} faces): {hybrid['encoder']['PSNR dB']:.1f} dB (std {hybrid['encoder']['PSNR std']:.1f}).",
        f"- Time to reach uniform init's {hybrid['steps']}-step PSNR ({goal.removeprefix('seconds to ')}): the "
        f"hybrid in {hybrid_reach[goal]:.3g} s, {share:.2g} of uniform's {reach['uniform init'][goal]:.1f} s "
        f"(target <= 1/5: {'met' if share is not None and share <= 0.2 else 'not met'}); with the in-domain term "
        + (
            "never within the run."
            if reach["encoder init + in-domain"][goal] is None
            else f"in {reach['encoder init + in-domain'][goal]:.3g} s."
        ),
        f"- Best PSNR: {summary[best_method]['PSNR dB']:.1f} dB, {best_method} after {hybrid['steps']} steps "
        f"(target >= 24 dB: {'met' if summary[best_method]['PSNR dB'] >= 24 else 'not met'}).",
        f"- The in-domain term (weight {hybrid['in_domain_weight']:g}) holds z near E(G(z)): "
        f"{summary['encoder init + in-domain']['PSNR dB']:.1f} dB after {hybrid['steps']} steps against the "
        f"hybrid's {summary['encoder init (hybrid)']['PSNR dB']:.1f} dB, each step "
        f"{summary['encoder init + in-domain']['seconds'] / summary['encoder init (hybrid)']['seconds']:.1f}x as "
        "slow (the encoder's forward and backward pass). Its effect on arithmetic is in the report "
        "([report/report.md](report/report.md)).\n",
    ]


MATTERS_DB, MATTERS_D = 0.1, 0.01  # a lambda "matters" once PSNR or D(G(z)) moves this far from lambda 0


def lambda_section(sweep: dict | None) -> list[str]:
    """bench/lambda.py: known-pixel PSNR, D(G(z)) and oracle agreement against lambda, projection and completion."""
    if not sweep:
        return []
    columns = ("lambda (sum)", "lambda (mean)", "known PSNR dB", "D(G(z))", "oracle agreement", "perceptual share")
    rows = [{"mode": r["mode"], **{k: r[k] for k in columns}} for r in sweep["rows"]]
    for row, r in zip(rows, sweep["rows"], strict=True):
        row["known PSNR dB"] = f"{r['known PSNR dB']:.2f} ± {r['PSNR ci95']:.2f}"
        row["D(G(z))"] = f"{r['D(G(z))']:.3f} ± {r['D ci95']:.3f}"
        row["oracle agreement"] = f"{r['oracle agreement']:.3f} ± {r['agreement ci95']:.3f}"
        row["lambda (sum)"] = f"{r['lambda (sum)']:g}"
        row["lambda (mean)"] = f"{r['lambda (mean)']:.3g}"
    findings = []
    for mode in sweep["modes"]:
        by = [r for r in sweep["rows"] if r["mode"] == mode]
        base, last = by[0], by[-1]
        papers = [r for r in by if r["lambda (sum)"] in (0.003, 0.1)]

        def moved(r, base=base):
            return (
                abs(r["known PSNR dB"] - base["known PSNR dB"]) >= MATTERS_DB
                or abs(r["D(G(z))"] - base["D(G(z))"]) >= MATTERS_D
            )

        matters = next((r for r in by[1:] if moved(r)), None)
        realer = next((r for r in by[1:] if r["D(G(z))"] - base["D(G(z))"] >= REALER_D), None)
        text = (
            f"{mode} ({base['known pixel values']:,} known pixel values): at lambda 0 the faces come back at "
            f"{base['known PSNR dB']:.2f} dB with D(G(z)) {base['D(G(z))']:.3f} and oracle agreement "
            f"{base['oracle agreement']:.3f}; at the papers' "
            + " and ".join(
                f"{r['lambda (sum)']:g} ({r['known PSNR dB']:.2f} dB, D {r['D(G(z))']:.3f}, agreement "
                f"{r['oracle agreement']:.3f}, perceptual share {r['perceptual share']:.1e})"
                for r in papers
            )
            + (" it already moves" if any(moved(r) for r in papers) else " nothing moves")
        )
        if matters is None:
            text += (
                f", and up to lambda {last['lambda (sum)']:g} nothing moves by {MATTERS_DB} dB or {MATTERS_D} in D "
                f"(at {last['lambda (sum)']:g}: {last['known PSNR dB']:.2f} dB, D {last['D(G(z))']:.3f}, agreement "
                f"{last['oracle agreement']:.3f}, perceptual share {last['perceptual share']:.2g})."
            )
        else:
            text += (
                f"; it starts to matter at lambda_sum {matters['lambda (sum)']:g} = lambda_mean "
                f"{matters['lambda (mean)']:.2g} ({matters['known PSNR dB']:.2f} dB, D {matters['D(G(z))']:.3f}, "
                f"perceptual share {matters['perceptual share']:.2g}), and at lambda_sum {last['lambda (sum)']:g} = "
                f"lambda_mean {last['lambda (mean)']:.2g} it gives {last['known PSNR dB']:.2f} dB, "
                f"D {last['D(G(z))']:.3f}, oracle agreement {last['oracle agreement']:.3f}, perceptual share "
                f"{last['perceptual share']:.2g}."
            )
        if realer is not None:
            text += (
                f" D(G(z)) first rises by {REALER_D} or more at lambda_sum {realer['lambda (sum)']:g} = lambda_mean "
                f"{realer['lambda (mean)']:.2g}, for {realer['known PSNR dB'] - base['known PSNR dB']:+.2f} dB of "
                f"known-pixel PSNR and {realer['oracle agreement'] - base['oracle agreement']:+.3f} oracle agreement."
            )
        findings.append(text)
    return [
        "## The lambda knob\n",
        f"`python bench/lambda.py --faces {sweep['faces']} --steps {sweep['steps']}`, {sweep['written']} "
        f"(`bench/results/lambda.json`): {sweep['faces']} held-out faces of the training render, the shipped "
        + ", ".join(f"`{name}/{version}`" for name, version in sweep["models"].items())
        + f", {sweep['preset']}, with the perceptual weight lambda swept; projection (full mask) and completion "
        "(center mask), each a `ProjectionRun` into memory. Measured on G(z): the PSNR of the known pixels, the "
        "discriminator's realism score D(G(z)) (mean sigmoid of its logit; the inputs themselves score "
        f"{sweep['input_realism']['mean']:.3f}), and the share of the oracle's {sweep['oracle_attributes']} "
        "attributes on which its verdict on G(z) equals its verdict on the input (mean over faces, ± the 95% "
        "interval). `lambda (mean)` is the same weight on the mean scale (`--param contextual.reduce=mean`, "
        "lambda_sum / known pixel values, [projection.md](projection.md#the-lambda-knob-sum-or-mean)); "
        "`perceptual share` is lambda x (-log D(G(z))) / the whole objective at the end. The strip: "
        "[images/lambda_strip.png](images/lambda_strip.png) (face 0, G(z) per lambda).\n",
        table(rows),
        "\nWhat the knob does (a lambda counts as mattering once the PSNR moves "
        f"{MATTERS_DB} dB or D(G(z)) moves {MATTERS_D} from lambda 0): " + " ".join(findings) + "\n",
    ]


def arch(a: dict) -> str:
    return f"{a['image_size']}x{a['image_size']}, z {a['z_dim']}, width {a['ngf']}"


def scale_section(scale: dict | None, gpu: dict | None, gpu_tiny: dict | None) -> list[str]:
    """Issue 16's measurements (bench/scale.py), and bench/gpu.sh's: on a GPU (gpu.json) when one was available,
    else its tiny CPU check (gpu-tiny.json), which shows that the script runs, not what a GPU does."""
    if not scale:
        return []
    paper, assumptions = scale["paper"], scale["paper"]["assumptions"]
    training = scale["training"]
    parts = [
        "## Scale: a TF Serving fleet and tf.distribute\n",
        f"`python bench/scale.py`, {scale['written']}. {scale['limits']} Walk-through: [scale.md](scale.md).\n",
        f"Projection through 1 and 2 stand-in replicas (`facemath serve` processes) from 1, 2 and 4 client "
        f"processes on loopback, batch {scale['projection']['batch_per_client']} per client, "
        f"{scale['projection']['steps']} steps after a warm-up, all clients at once:\n",
        table(scale["projection"]["rows"]),
        f"\nTraining step of a tiny GAN ({arch(training['arch'])}, global batch {training['global_batch']}), "
        f"{training['timed']}; all-reduced bytes counted from the model's trainable variables "
        f"({training['payload']['gradient_bytes']} bytes of gradients) and its synchronized BatchNorm statistics "
        f"({training['payload']['batchnorm_bytes']} bytes); overhead share = (step - one-device step) / step:\n",
        table(training["rows"]),
        f"\nOn paper: the DCGAN of the CelebA recipe ({arch(paper['arch'])}: "
        f"{paper['payload']['gradient_bytes'] / 2**20:.1f} MiB of gradients per step, "
        f"{paper['payload']['flops_per_image'] / 1e9:.2f} GFLOP per training image); CelebA = 202,599 faces x 25 "
        f"epochs; projection = 100,000 photos x 1000 steps at {paper['projection_gflop_per_image_step']:.3f} GFLOP "
        "per image-step (bench/projection.py). Assumptions (also in scale.json):\n",
        f"- an accelerator sustains {assumptions['accelerator_sustained_tflops']:g} TFLOP/s: "
        f"{assumptions['accelerator_note']};",
        f"- the 2-core CPU rows use the {paper['cpu_training_gflops']:.0f} GFLOP/s GAN training reaches on this "
        "machine (bench/models.py) and the 1-replica projection rate measured above;",
        f"- {assumptions['batch_per_replica']} images per replica: {assumptions['weak_scaling']};",
        f"- {assumptions['allreduce']}; links: {assumptions['link_note']};",
        f"- projection: {assumptions['projection']}.\n",
        table(paper["rows"]),
    ]
    if gpu:
        parts += [
            f"\n`bash bench/gpu.sh` on {', '.join(gpu['device'])}, {gpu['written']}:\n",
            table(gpu["training"]),
            "\n",
            table(gpu["projection"]),
        ]
    elif gpu_tiny:
        parts += [
            f"\nNo GPU run yet. `FACEMATH_GPU_SIZE=tiny bash bench/gpu.sh` on {', '.join(gpu_tiny['device'])}, "
            f"{gpu_tiny['written']}: the script's CPU check on a tiny GAN (32x32, width 8); on CPU, mixed precision "
            "and XLA cost time rather than save it, so these numbers say nothing about a GPU:\n",
            table(gpu_tiny["training"]),
            "\n",
            table(gpu_tiny["projection"]),
        ]
    return parts


if __name__ == "__main__":
    main()
