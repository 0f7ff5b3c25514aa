"""The GAN-vs-VAE comparison (`facemath compare`): the question the project was started for, answered with numbers.

On the same held-out labelled faces it runs three ways into latent space: GAN projection (amos2016 settings),
the VAE encoder, and the hybrid (projection started at the gan_encoder's z, as in iGAN). For each it measures
reconstruction (PSNR, SSIM, L1, sharpness, oracle agreement, seconds per image), attribute vectors (AUC, success,
preservation) and the DCGAN paper's analogies with 1 and 3 exemplars per concept. Every number comes with its
sample size and a 95% interval. Figures are drawn by `facemath_core.report.figures`, the documents written by
`facemath_core.report.document`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.metrics import l1, laplacian_variance, mean_ci, psnr, ssim, wilson
from facemath_core.data.folders import PARTITION_FILE, open_faces
from facemath_core.data.images import load_images, to_unit
from facemath_core.latent.latents import Latents
from facemath_core.latent.quality import score_analogies, score_vectors
from facemath_core.latent.space import LatentSpace
from facemath_core.projection.projector import ProjectionConfig
from facemath_core.projection.run import JobInputs, MemorySink, ProjectionRun
from facemath_core.projection.settings import projection_config
from facemath_core.report.knob import MASKS, lambda_sweep, sigmoid, strip_grid

METHODS = ("GAN projection", "hybrid (encoder init)", "in-domain hybrid", "VAE encoder")
MIN_FACES = 3  # two to fit attribute vectors on, one held out to score them
FEW_FACES = 20  # below this every interval is wide: the report still runs, with a warning
SLUG = {
    "GAN projection": "gan",
    "hybrid (encoder init)": "hybrid",
    "in-domain hybrid": "in-domain",
    "VAE encoder": "vae",
}
# The hybrid starts at the gan_encoder's z (`--init encoder` with the GAN: the encoder trained for its generator);
# the in-domain hybrid also keeps z where the encoder would put it (Zhu et al. 2020: the `in-domain` loss term).
REPORT_MODELS = (S.GENERATOR, S.DISCRIMINATOR, S.GAN_ENCODER, S.VAE_ENCODER, S.VAE_DECODER, S.ORACLE)


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
    """Run the three methods on the same faces and score each: everything the report shows."""
    for model in REPORT_MODELS:
        if not backend.has(model):
            raise FacemathError(f"--models: the report needs the {model} model, and it is missing")
    size = backend.metadata(S.GENERATOR)["image_size"]
    folder, paths, images, labels, used = load_faces(data, cfg.count, size, cfg.seed)
    names = [p.name for p in paths]
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
    gan = projection_config(registry, preset="amos2016", steps=cfg.steps, seed=cfg.seed)
    hybrid = replace(gan, init="encoder")
    in_domain = projection_config(
        registry, preset="amos2016", loss_plugins=["in-domain"], init="encoder", steps=cfg.steps, seed=cfg.seed
    )

    results, runs = {}, {}
    for method in METHODS:
        progress(f"{method}: {len(images)} faces")
        start = time.perf_counter()
        if method == "VAE encoder":
            z = backend.encode(images)[0]
            family, decoder = "vae", S.VAE_DECODER
        else:
            config = {"GAN projection": gan, "hybrid (encoder init)": hybrid, "in-domain hybrid": in_domain}[method]
            z = project_all(backend, registry, config, images, names, progress)
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
        runs[method] = MethodRun(z, recon, space, render)
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
    )


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
