"""The GAN-vs-VAE comparison (`facemath compare`): the question the project was started for, answered with numbers.

On the same held-out labelled faces it runs six ways into latent space: GAN projection (amos2016 settings), the
hybrid (projection started at the gan_encoder's z, as in iGAN), the in-domain hybrid (Zhu et al. 2020), the VAE
encoder, the VAE-GAN encoder (Larsen et al. 2016) and the VAE-GAN hybrid (projection through the VAE-GAN's decoder,
started at its encoder's z). For each it measures reconstruction (PSNR, SSIM, L1, sharpness, oracle agreement,
seconds per image), realism (a Frechet distance in the oracle's features, of the reconstructions and of the
model's prior samples), attribute vectors (AUC, success, preservation) and the DCGAN paper's analogies with 1 and 3
exemplars per concept. Every number comes with its sample size and a 95% interval.

The projections are the expensive part (seconds per face against milliseconds for an encoder): `--latents
SLUG=FILE` feeds a method's z from `facemath project` runs, sharded over workers and joined with `facemath latents
merge`, after checking they are what this report would have computed (the same faces, models and settings).
Figures are drawn by `facemath_core.report.figures`, the documents written by `facemath_core.report.document`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.metrics import frechet_interval, l1, laplacian_variance, mean_ci, psnr, ssim, wilson
from facemath_core.data.folders import PARTITION_FILE, open_faces
from facemath_core.data.images import load_images, to_unit
from facemath_core.latent.latents import Latents, load_latents
from facemath_core.latent.quality import oracle_features, score_analogies, score_vectors
from facemath_core.latent.space import LatentSpace
from facemath_core.models.architectures import prior_config, sample_z
from facemath_core.projection.projector import ProjectionConfig
from facemath_core.projection.run import JobInputs, MemorySink, ProjectionRun
from facemath_core.projection.settings import projection_config
from facemath_core.report.knob import MASKS, lambda_sweep, sigmoid, strip_grid


@dataclass(frozen=True)
class Method:
    """One way into latent space: a projection (`facemath project` with these options) or an encoder alone."""

    name: str
    slug: str  # file names, figure labels and `--latents SLUG=FILE`
    decoder: str  # the model the method's z are rendered through
    projection: dict | None = None  # projection_config's options; None: the encoder's posterior mean

    def config(self, registry, steps: int, seed: int) -> ProjectionConfig | None:
        if self.projection is None:
            return None
        return projection_config(registry, preset="amos2016", steps=steps, seed=seed, **self.projection)


# The hybrids start at the z of the model's own encoder (`--init encoder`: for the GAN, the gan_encoder trained to
# invert its generator); the in-domain hybrid also keeps z where the encoder would put it (Zhu et al. 2020: the
# `in-domain` loss term). The VAE-GAN hybrid projects through the VAE-GAN's decoder, judged by its discriminator.
ALL_METHODS = (
    Method("GAN projection", "gan", S.GENERATOR, {}),
    Method("hybrid (encoder init)", "hybrid", S.GENERATOR, {"init": "encoder"}),
    Method("in-domain hybrid", "in-domain", S.GENERATOR, {"loss_plugins": ["in-domain"], "init": "encoder"}),
    Method("VAE encoder", "vae", S.VAE_DECODER),
    Method("VAE-GAN encoder", "vaegan", S.VAEGAN_DECODER),
    Method("VAE-GAN hybrid", "vaegan-hybrid", S.VAEGAN_DECODER, {"model": "vaegan", "init": "encoder"}),
)
METHODS = tuple(m.name for m in ALL_METHODS)
SLUG = {m.name: m.slug for m in ALL_METHODS}
BY_SLUG = {m.slug: m for m in ALL_METHODS}
MIN_FACES = 3  # two to fit attribute vectors on, one held out to score them
FEW_FACES = 20  # below this every interval is wide: the report still runs, with a warning
REPORT_MODELS = (
    S.GENERATOR,
    S.DISCRIMINATOR,
    S.GAN_ENCODER,
    S.VAE_ENCODER,
    S.VAE_DECODER,
    S.VAEGAN_ENCODER,
    S.VAEGAN_DECODER,
    S.VAEGAN_DISCRIMINATOR,
    S.ORACLE,
)
# The decoders whose prior samples the realism table judges, in the order of the methods that use them.
PRIOR_MODELS = (S.GENERATOR, S.VAE_DECODER, S.VAEGAN_DECODER)
FAMILY_OF = {decoder: family for family, decoder in S.FAMILIES.items()}
BOOTSTRAP_ROUNDS = 200  # resamples behind each Frechet distance's 95% interval
# Fields of a projection config that do not change a face's z: how many faces share a batch (every face's draws
# are seeded by its name), and how long the run took.
_NOT_RESULT = ("batch_size", "projection_seconds")


@dataclass(frozen=True)
class CompareConfig:
    count: int = 256
    steps: int = 1000
    exemplars: tuple[int, ...] = (1, 3)
    trials: int = 40  # analogies per target attribute and exemplar count
    held_out: float = 0.3  # share of the faces kept out of fitting attribute vectors
    pivot: str = "Male"
    seed: int = 0
    lambdas: tuple[float, ...] = ()  # `--lambdas`: the perceptual weights the lambda-knob section sweeps; () = none
    latents: tuple[tuple[str, str], ...] = ()  # `--latents SLUG=FILE`: methods whose z come from projection runs


@dataclass
class MethodRun:
    """What one way into latent space produced, for the figures and the latents files: not part of report.json."""

    z: np.ndarray  # (N, D)
    recon: np.ndarray  # (N, H, W, 3) in [-1, 1]
    space: LatentSpace
    render: Callable[[np.ndarray], np.ndarray]  # z -> images, through this method's decoder


@dataclass
class CompareResult:
    """Everything the report shows: the scores as plain data (`summary()`, report.json) and the arrays behind them."""

    config: CompareConfig
    data: str
    judged_attributes: list[str]
    models: dict[str, int]
    methods: dict[str, dict]  # method -> its scores (plain data)
    originals: np.ndarray  # the held-out faces, in [-1, 1]
    runs: dict[str, MethodRun] = field(default_factory=dict)
    operators: dict = field(default_factory=dict)  # the operator plugins, for the worked examples
    faces_used: str = ""  # which faces of --data, in words
    face_names: list[str] = field(default_factory=list)
    knob: dict = field(default_factory=dict)  # the lambda sweep (`--lambdas`): its modes and rows; empty without one
    knob_strip: np.ndarray | None = None  # face 0 across lambdas, one row per mode (uint8)
    realism: dict = field(default_factory=dict)  # prior samples' Frechet distances and the real faces' own floor
    priors: dict[str, np.ndarray] = field(default_factory=dict)  # decoder -> a few of its prior samples, for a figure

    def summary(self) -> dict:
        """The scores as JSON-ready data."""
        return {
            "config": asdict(self.config),
            "data": self.data,
            "judged_attributes": self.judged_attributes,
            "models": self.models,
            "faces_used": self.faces_used,
            "face_names": self.face_names,
            "methods": self.methods,
            "realism": self.realism,
            **({"lambda_knob": self.knob} if self.knob else {}),
        }


def load_faces(data: str | Path, count: int, size: int, seed: int):
    """`count` labelled faces drawn (seeded) from the held-out part of `data` (the whole folder when it has no
    partition file): (folder, paths, images in [-1, 1], labels as booleans, which faces in words)."""
    folder = open_faces(data)
    if folder.attributes is None:
        raise FacemathError(f"--data {data}: has no list_attr_celeba.txt; the report needs labelled faces")
    if (folder.root / PARTITION_FILE).exists():
        folder = folder.split("held-out")
        used = f"the held-out faces of {PARTITION_FILE}"
    else:
        used = f"every face: there is no {PARTITION_FILE} saying which were kept out of training"
    if len(folder.paths) < MIN_FACES:
        raise FacemathError(
            f"--data {data}: {len(folder.paths)} faces to compare on ({used}); the report needs at least {MIN_FACES}"
        )
    rows = np.arange(len(folder.paths))
    if count < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, count, replace=False))
        used = f"{count} drawn (seed {seed}) from {used}"
    if len(rows) < MIN_FACES:
        raise FacemathError(f"--count {count}: the report needs at least {MIN_FACES} faces")
    paths = [folder.paths[i] for i in rows]
    return folder, paths, to_unit(load_images(paths, size)), folder.attributes[rows] > 0, used


class _BatchProgress(MemorySink):
    """Keeps the run's result and says how many faces are done after each batch."""

    def __init__(self, run: ProjectionRun, count: int, progress: Callable[[str], None]):
        super().__init__()
        self.chunks, self.count, self.say = run.chunks(count), count, progress

    def batch_done(self, batch: int, result) -> None:
        self.say(f"  {self.chunks[batch].stop}/{self.count} faces")


def project_all(
    backend, registry, config: ProjectionConfig, targets: np.ndarray, keys: list[str], progress: Callable[[str], None]
):
    """Project every target (a `ProjectionRun`, as `facemath project` runs it, kept in memory), in batches of
    `config.batch_size`. Each face's random draws (its starting z, stochastic clipping) are seeded by --seed and
    its key (its file name), so a face's z does not depend on the faces that share its batch."""
    run = ProjectionRun(backend, registry, config)
    inputs = JobInputs(names=list(keys), paths=list(keys), images=targets, resized=[], keys=list(keys))
    sink = _BatchProgress(run, len(keys), progress)
    masks = np.ones(targets.shape[:3], np.float32)  # every pixel known: the report compares whole faces
    return run.run(run.prepare(inputs, masks), sink, warn=progress).latents.z


def run_compare(data, backend, registry, cfg: CompareConfig, progress: Callable[[str], None] = print) -> CompareResult:
    """Run the six methods on the same faces and score each: everything the report shows."""
    for model in REPORT_MODELS:
        if not backend.has(model):
            raise FacemathError(f"--models: the report needs the {model} model, and it is missing")
    size = backend.metadata(S.GENERATOR)["image_size"]
    folder, paths, images, labels, used = load_faces(data, cfg.count, size, cfg.seed)
    names = [p.name for p in paths]
    fed = {slug: fed_latents(backend, registry, cfg, slug, path, names) for slug, path in cfg.latents}
    progress(f"comparing on {len(names)} faces: {used}")
    if len(names) < FEW_FACES:
        progress(f"warning: only {len(names)} faces: every interval in the report is wide (use {FEW_FACES} or more)")
    attribute_names = list(folder.attribute_names)
    oracle_names = backend.metadata(S.ORACLE)["attribute_names"]
    judged = [n for n in attribute_names if n in oracle_names]
    if cfg.pivot not in judged:
        raise FacemathError(f"--pivot {cfg.pivot}: not an attribute both the labels and the oracle know")
    judged_columns = [oracle_names.index(n) for n in judged]
    original_verdicts = backend.judge(images)[:, judged_columns] > 0
    registry_ops = {n: registry.get("operator", n) for n in registry.names("operator")}
    real_features = oracle_features(backend, images)

    results, runs = {}, {}
    for index, method in enumerate(ALL_METHODS):
        z, seconds, origin = _find_latents(method, backend, registry, cfg, images, names, fed, progress)
        recon = backend.generate(z, method.decoder)
        verdicts = backend.judge(recon)[:, judged_columns] > 0
        latents = Latents(
            names=names,
            z=z,
            family=FAMILY_OF[method.decoder],
            model=method.decoder,
            model_version=backend.version(method.decoder),
            source="encoder" if method.projection is None else "projection",
            config={"inputs": [str(p) for p in paths], "method": method.name, **({"fed": origin} if origin else {})},
            models={method.decoder: backend.version(method.decoder)},
        )
        space = LatentSpace(latents, attribute_names, labels, str(folder.root))

        def render(v, decoder=method.decoder):
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
        # One exemplar per group drawn as matched sets on the labels (`math --match`): the groups agree on every
        # labelled attribute but the target and the pivot, which random exemplars do not.
        matched = score_analogies(
            space, registry_ops, render, backend.judge, oracle_names, targets, cfg.pivot, 1, cfg.trials, cfg.seed,
            match=True,
        )  # fmt: skip
        sharp = laplacian_variance(recon) / np.maximum(laplacian_variance(images), 1e-12)
        results[method.name] = {
            "faces": len(images),
            "seconds_per_image": seconds,
            **({"latents_from": origin} if origin else {}),
            "psnr": mean_ci(psnr(recon, images)),
            "ssim": mean_ci(ssim(recon, images)),
            "l1": mean_ci(l1(recon, images)),
            "sharpness_ratio": mean_ci(sharp),
            # The reconstructions as a population against the real faces (paired: a face and its reconstruction
            # are resampled together).
            "frechet": frechet_interval(
                real_features, oracle_features(backend, recon), True, BOOTSTRAP_ROUNDS, cfg.seed + index
            ),
            "oracle_agreement": mean_ci((verdicts == original_verdicts).mean(axis=1)),
            "label_agreement": mean_ci((verdicts == labels[:, [attribute_names.index(n) for n in judged]]).mean(1)),
            "vectors": [s.as_dict() for s in vector_scores],
            "analogies": {str(n): [s.as_dict() for s in scores] for n, scores in analogies.items()},
            "matched_analogies": [s.as_dict() for s in matched],
        }
        runs[method.name] = MethodRun(z, recon, space, render)
    realism, priors = prior_realism(backend, real_features, cfg.seed, progress)
    knob, strip = sweep_lambdas(backend, registry, cfg, images, names, judged_columns, progress)
    return CompareResult(
        config=cfg,
        data=str(Path(data)),
        judged_attributes=judged,
        models={m: backend.version(m) for m in REPORT_MODELS},
        methods=results,
        originals=images,
        runs=runs,
        operators=registry_ops,
        faces_used=used,
        face_names=names,
        knob=knob,
        knob_strip=strip,
        realism=realism,
        priors=priors,
    )


def _find_latents(method: Method, backend, registry, cfg: CompareConfig, images, names, fed, progress):
    """A method's z for the faces: (z, seconds per image, the file they were fed from or "")."""
    if method.slug in fed:
        z, seconds, path = fed[method.slug]
        progress(f"{method.name}: {len(names)} faces from {path}")
        return z, seconds, path
    progress(f"{method.name}: {len(images)} faces")
    start = time.perf_counter()
    if method.projection is None:
        z = backend.encode_z(images, method.decoder)
    else:
        z = project_all(backend, registry, method.config(registry, cfg.steps, cfg.seed), images, names, progress)
    return z, (time.perf_counter() - start) / len(images), ""


def fed_latents(backend, registry, cfg: CompareConfig, slug: str, path: str, names: list[str]):
    """`--latents SLUG=FILE`: (z for `names` in their order, the run's seconds per image or None, the file) from a
    `facemath project` run, refused in one line unless it is what this report would have computed: a projection of
    every compared face through the same model versions with the same settings (batch size apart, which does not
    change a face's z)."""
    option = f"--latents {slug}={path}"
    method = BY_SLUG.get(slug)
    if method is None:
        projections = ", ".join(m.slug for m in ALL_METHODS if m.projection is not None)
        raise FacemathError(f"{option}: no method {slug!r}; projections that take latents: {projections}")
    if method.projection is None:
        raise FacemathError(f"{option}: the {method.name}'s z is computed in milliseconds; only projections take it")
    latents = load_latents(path)
    if latents.source != "projection" or latents.model != method.decoder:
        raise FacemathError(
            f"{option}: holds {latents.source} latents of {latents.model}; the {method.name} projects through "
            f"{method.decoder}"
        )
    for model, version in latents.models.items():
        if backend.has(model) and backend.version(model) != version:
            raise FacemathError(
                f"{option}: made with {model} version {version}; --models serves version {backend.version(model)}"
            )
    expected = method.config(registry, cfg.steps, cfg.seed).to_dict()
    made = {k: v for k, v in latents.config.items() if k in expected}
    for key, value in expected.items():
        if key not in _NOT_RESULT and made.get(key) != value:
            raise FacemathError(
                f"{option}: projected with {key} {made.get(key)!r}; the report's {method.name} uses {value!r} "
                f"(--steps and --seed are compare's; the rest is `project --preset amos2016"
                + "".join(f" --{k.replace('_', '-')} {v}" for k, v in _cli_options(method).items())
                + "`)"
            )
    rows = {}
    for i, name in enumerate(latents.names):
        rows.setdefault(Path(name).name, i)
    missing = [n for n in names if n not in rows]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FacemathError(f"{option}: has no projection of {missing[0]}{more} of the {len(names)} compared faces")
    seconds = latents.config.get("projection_seconds")
    per_image = seconds / len(latents.names) if seconds is not None else None
    return latents.z[[rows[n] for n in names]], per_image, str(path)


def _cli_options(method: Method) -> dict:
    """The method's projection options as `facemath project` spells them."""
    options = dict(method.projection)
    if "loss_plugins" in options:
        options["loss_plugin"] = " --loss-plugin ".join(options.pop("loss_plugins"))
    return options


def prior_realism(backend, real_features: np.ndarray, seed: int, progress: Callable[[str], None]):
    """The Frechet distance of each decoder's prior samples (as many as there are real faces, drawn from the
    prior its metadata names) to the real faces, and the real faces' own floor: two random halves of them against
    each other (what sampling noise alone gives at half the size)."""
    n = len(real_features)
    progress(f"realism: {n} prior samples of each of {', '.join(PRIOR_MODELS)}")
    rows, grids = [], {}
    for index, model in enumerate(PRIOR_MODELS):
        cfg = prior_config(backend.metadata(model))
        samples = backend.generate(sample_z(cfg, n, seed=seed + 1000 + index), model)
        value = frechet_interval(
            real_features, oracle_features(backend, samples), False, BOOTSTRAP_ROUNDS, seed + 100 + index
        )
        rows.append(
            {
                "model": model,
                "version": backend.version(model),
                "prior": cfg.z_distribution,
                "samples": n,
                "frechet": value,
            }
        )
        grids[model] = samples[:8]
    halves = np.random.default_rng(seed).permutation(n)
    floor = frechet_interval(
        real_features[halves[: n // 2]], real_features[halves[n // 2 : 2 * (n // 2)]], False, BOOTSTRAP_ROUNDS, seed
    )
    return {"prior_samples": rows, "real_halves": {"faces": n // 2, "frechet": floor}}, grids


def sweep_lambdas(
    backend,
    registry,
    cfg: CompareConfig,
    images: np.ndarray,
    names: list[str],
    columns: list[int],
    progress: Callable[[str], None],
) -> tuple[dict, np.ndarray | None]:
    """The lambda knob on the compared faces (`--lambdas`): projection and center-mask completion at each lambda,
    the same preset, steps, seed and batches as the GAN projection; nothing without `--lambdas`."""
    if not cfg.lambdas:
        return {}, None
    rows, strips, masks = [], {}, {}
    for mode in MASKS:
        progress(f"the lambda knob, {mode}: lambda {', '.join(f'{lam:g}' for lam in cfg.lambdas)}")
        mode_rows, strips[mode], mask = lambda_sweep(
            backend,
            registry,
            images,
            mode,
            cfg.steps,
            cfg.lambdas,
            names=names,
            columns=columns,
            seed=cfg.seed,
            batch_size=ProjectionConfig().batch_size,  # batched as the GAN projection: `project`'s default
            on_row=lambda row: progress(
                f"  lambda {row['lambda (sum)']:g}: {row['known PSNR dB']:.2f} dB, D(G(z)) {row['D(G(z))']:.3f}"
            ),
        )
        rows += mode_rows
        masks[mode] = None if MASKS[mode] == "full" else mask
    realism = mean_ci(sigmoid(backend.discriminate(images)))
    knob = {"modes": list(MASKS), "lambdas": list(cfg.lambdas), "input_realism": realism, "rows": rows}
    return knob, strip_grid(images[0], masks, strips, cfg.lambdas)


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


# --- the verdict: which method leads on each measure -----------------------------------------------------------

# (label, how to read it from a method's entry, higher is better): a measure's value and its interval half-width.
MEASURES = (
    ("PSNR", lambda e: e["psnr"], True),
    ("SSIM", lambda e: e["ssim"], True),
    ("realism (Frechet)", lambda e: e["frechet"], False),
    (
        "sharpness",
        lambda e: (-abs(np.log(e["sharpness_ratio"][0])), e["sharpness_ratio"][1] / e["sharpness_ratio"][0]),
        True,
    ),
    ("oracle agreement", lambda e: e["oracle_agreement"], True),
    ("attribute AUC", lambda e: vector_summary(e["vectors"])["auc"], True),
    ("edit success", lambda e: vector_summary(e["vectors"])["success"], True),
)


def standings(methods: dict[str, dict], exemplars: tuple[int, ...] | list[int]) -> list[dict]:
    """For each measure, the method that leads and those whose 95% intervals overlap the leader's (a tie: the
    faces cannot tell them apart). Sharpness leads by closeness to the original's (|log ratio|, its interval
    carried over by the delta method). Analogies: the Wilson intervals of their success rates."""
    measures = list(MEASURES) + [
        (
            f"{n}-exemplar analogies",
            lambda e, n=n: _rate_as_ci(analogy_summary(e["analogies"][str(n)])["success"]),
            True,
        )
        for n in exemplars
    ]
    if all(e.get("matched_analogies") for e in methods.values()):
        measures.append(
            ("matched analogies", lambda e: _rate_as_ci(analogy_summary(e["matched_analogies"])["success"]), True)
        )
    rows = []
    for label, read, higher in measures:
        values = {m: read(e) for m, e in methods.items()}
        finite = {m: v for m, v in values.items() if np.isfinite(v[0])}
        if not finite:
            continue
        sign = 1.0 if higher else -1.0
        leader = max(finite, key=lambda m: sign * finite[m][0])
        lead, lead_half = finite[leader]
        lead_half = lead_half if np.isfinite(lead_half) else 0.0
        tied = [
            m
            for m, (v, half) in finite.items()
            if m != leader and sign * (lead - v) <= lead_half + (half if np.isfinite(half) else 0.0)
        ]
        rows.append({"measure": label, "leader": leader, "tied": tied})
    return rows


def _rate_as_ci(triple) -> tuple[float, float]:
    """A Wilson (rate, low, high) as (rate, half-width) for the overlap test: the wider side."""
    rate, low, high = triple
    return rate, max(rate - low, high - rate)
