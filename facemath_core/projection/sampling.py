"""Sampled completions: many plausible z per image from the posterior the completion's loss defines (issue 31).

After the optimisation, a sampler plugin (`facemath complete --sampler hmc --samples N`) draws N z per image from
exp(-beta * U(z)) on the prior's box, where U is exactly the loss the projection minimised
(`Projector.energy`: every term, weight and mask, through the backend, so also through TF Serving's projector),
each image's chain starting at its optimised z. `SamplingSink` is the result folder of `complete --sampler`: the
completion's own files plus the samples' (module docstring of docs/outputs.md), published together.

The sampler sees the energy as a plain function of numpy z -> (U, dU/dz) per image: its core is testable on any
known distribution (tests/plugins/test_hmc.py), and a third-party sampler needs no TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facemath_core.base.drawing import enlarge, labelled_grid, outline, scale_for
from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_file
from facemath_core.base.seeds import stable_hash
from facemath_core.data.images import from_unit, save_png
from facemath_core.host.contracts import blend, check_sampler, draw_samples
from facemath_core.host.manager import check_params
from facemath_core.latent.latents import Latents, read_npz, save_latents
from facemath_core.projection.projector import Energy, Projector, parse_params
from facemath_core.projection.run import FolderSink, ProjectionRun, RunResult

SAMPLES_FILE = "samples.npz"  # every sample as a latents file of its own (flat), for math and render
SAMPLES_SHEET = "samples_sheet.png"
# Sampler settings of a paper, applied by the projection's --preset of the same name. Amos' dcgan-completion,
# `--approach hmc`: `--hmcBeta 0.2 --hmcEps 0.001 --hmcL 100` (its complete.py's defaults).
SAMPLER_PRESETS: dict[str, dict[str, dict]] = {"amos2016": {"hmc": {"beta": 0.2, "eps": 0.001, "L": 100}}}


@dataclass(frozen=True)
class SamplingConfig:
    """`--sampler NAME --samples N` and the sampler's parameters (typed and checked by its schema)."""

    sampler: str
    samples: int
    params: dict

    def to_dict(self) -> dict:
        return asdict(self)


def sampling_config(
    registry, sampler: str, samples: int, params: list[str] | None, preset: str | None = None
) -> tuple[SamplingConfig, list[str]]:
    """The sampling config, and the `--param` values that are not the sampler's (for the projection's config).

    `--param NAME.KEY=VALUE` with NAME the sampler's name sets its parameter KEY; a preset's sampler settings
    (SAMPLER_PRESETS) come first. Every problem is one line naming the option, before any work."""
    if samples < 1:
        raise FacemathError(f"--samples {samples}: must be at least 1")
    component = registry.get("sampler", sampler, option="--sampler")
    mine, rest = [], []
    for value in params or []:
        (mine if value.partition(".")[0] == component.name else rest).append(value)
    given = dict(SAMPLER_PRESETS.get(preset or "", {}).get(component.name, {}))
    given.update(parse_params(mine).get(component.name, {}))
    typed = check_params(component, given)
    check_sampler(component, typed, 8, 1.0)  # on a check energy, before any work (its own refusals included)
    return SamplingConfig(component.name, samples, typed), rest


def numpy_energy(energy: Energy) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`energy` as the sampler takes it: numpy z (N, D) -> (U (N,), dU/dz (N, D)), float64, one traced call
    (the backend's gradient: the projector's own on TF Serving) per evaluation."""
    import tensorflow as tf  # deferred: TensorFlow loads only for a run

    @tf.function(reduce_retracing=True)
    def value_and_gradient(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            _, total = energy.function(z)
        return total, tape.gradient(total, z)

    def evaluate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with energy.guard("while sampling"):
            total, gradient = value_and_gradient(tf.constant(np.asarray(z, np.float32)))
        return total.numpy().astype(np.float64), gradient.numpy().astype(np.float64)

    return evaluate


def sample_batch(
    projector: Projector,
    component,
    config: SamplingConfig,
    targets: np.ndarray,
    masks: np.ndarray,
    z0: np.ndarray,
    rng: np.random.Generator,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """`config.samples` z per image of one batch, each chain from its row of `z0`: ((N, samples, D), (N,))."""
    energy = projector.energy(targets, masks)
    return draw_samples(component, config.params, numpy_energy(energy), z0, energy.bound, rng, config.samples, where)


@dataclass
class Samples:
    """What sampling produced for a run's images: z (N, samples, D), acceptance (N,), G(z) of every sample
    (N, samples, S, S, 3) and the blended completions (same shape), all in [-1, 1]."""

    z: np.ndarray
    acceptance: np.ndarray
    generated: np.ndarray
    completions: np.ndarray


def sample_run(run: ProjectionRun, component, config: SamplingConfig, result: RunResult) -> Samples:
    """Sample every image of a finished run, batch by batch (the run's batch size), from its optimised z. The
    draws of a batch come from one generator seeded by --seed and the batch's image keys. A failed image (no
    finite loss) is not sampled: its samples repeat its z and its acceptance is NaN."""
    inputs, masks, latents = result.inputs, result.masks, result.latents
    n, d = latents.z.shape
    z = np.repeat(latents.z[:, None, :], config.samples, axis=1).astype(np.float32)
    acceptance = np.full(n, np.nan)
    failed = latents.failed if latents.failed is not None else np.zeros(n, bool)
    for chunk in run.chunks(n):
        rows = [i for i in chunk if not failed[i]]
        if not rows:
            continue
        keys = [inputs.keys[i] for i in rows]
        rng = np.random.default_rng(stable_hash(run.config.seed, *keys, "sample"))
        where = f"{inputs.names[rows[0]]}" + (f" and {len(rows) - 1} more" if len(rows) > 1 else "")
        z[rows], acceptance[rows] = sample_batch(
            run.projector, component, config, inputs.images[rows], masks[rows], latents.z[rows], rng, where
        )
    generated = run.backend.generate(z.reshape(n * config.samples, d), latents.model)
    generated = generated.reshape(n, config.samples, *generated.shape[1:])
    completions = np.stack(
        [
            np.stack(
                [
                    blend(run.blender, run.blend_params, inputs.images[i], g, masks[i], inputs.names[i])
                    for g in generated[i]
                ]
            )
            for i in range(n)
        ]
    )
    return Samples(z, acceptance, generated, completions)


def sample_names(names: list[str], samples: int) -> list[str]:
    """The flat names of samples.npz: `face0_sample_001.png`, ... (what math and render call them)."""
    return [f"{Path(name).stem}_sample_{k + 1:03d}.png" for name in names for k in range(samples)]


def std_tile(generated: np.ndarray, scale: float) -> np.ndarray:
    """The per-pixel standard deviation over samples (S, H, W, 3) in [-1, 1], averaged over colour, as a grey tile:
    black where every sample agrees, white at `scale` (the sheet's largest) or more."""
    spread = generated.std(axis=0).mean(axis=-1)
    grey = np.clip(spread / scale, 0, 1) if scale > 0 else np.zeros_like(spread)
    return np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


class SamplingSink(FolderSink):
    """The result folder of `facemath complete --sampler`: everything `complete` writes, then each image's
    samples, drawn after the optimisation (docs/outputs.md). Nothing is published before the samples are."""

    def __init__(self, out, component, config: SamplingConfig, overwrite: bool = False, progress=None):
        super().__init__(out, overwrite=overwrite, progress=progress)
        self.component, self.sampling = component, config
        self._run: ProjectionRun | None = None
        self.samples: Samples | None = None

    def begin(self, run, prepared, resume_from) -> None:
        super().begin(run, prepared, resume_from)
        self._run = run

    def write_files(self, result: RunResult) -> None:
        super().write_files(result)
        if not result.inputs.names:
            return
        samples = sample_run(self._run, self.component, self.sampling, result)
        self.samples = samples
        latents, inputs = result.latents, result.inputs
        record = {**self.sampling.to_dict(), "provider": str(self.component.provider)}
        # latents.npz keeps z (N, D), the optimised z every tool reads, and gains the samples beside it.
        path = self.partial / "latents.npz"
        arrays = read_npz(path)
        arrays.update(
            sample_z=samples.z,  # (images, samples, dim)
            sample_acceptance=samples.acceptance.astype(np.float32),  # (images,), NaN for a failed image
            sampler=np.array(json.dumps(record, sort_keys=True)),
        )
        with atomic_file(path) as handle:
            np.savez(handle, **arrays)
        n, count = len(inputs.names), self.sampling.samples
        flat = Latents(
            names=sample_names(inputs.names, count),
            z=samples.z.reshape(n * count, -1),
            family=latents.family,
            model=latents.model,
            model_version=latents.model_version,
            source="sampling",
            failed=np.repeat(latents.failed, count) if latents.failed is not None else None,
            config={**latents.config, "sampler": record},
            models=latents.models,
        )
        save_latents(self.partial / SAMPLES_FILE, flat)
        for i, name in enumerate(inputs.names):
            folder = self.partial / "completions" / Path(name).stem
            for k in range(count):
                save_png(folder / f"sample_{k + 1:03d}.png", from_unit(samples.completions[i, k]))
        save_png(self.partial / SAMPLES_SHEET, self.sheet(result, samples))

    def sheet(self, result: RunResult, samples: Samples) -> np.ndarray:
        """One row per image: the masked input, each blended sample, and the per-pixel standard deviation of G(z)
        over the samples (one grey scale for the sheet, its maximum in the caption)."""
        inputs, masks = result.inputs, result.masks
        spread = samples.generated.std(axis=1).mean(axis=-1)  # (N, H, W)
        scale = float(spread.max())
        big_scale = scale_for(inputs.images.shape[1])
        rows, captions = [], []
        for i, name in enumerate(inputs.names):
            masked = from_unit(np.where(masks[i][..., None] > 0.5, inputs.images[i], 0.0))
            tiles = [masked, *(from_unit(c) for c in samples.completions[i]), std_tile(samples.generated[i], scale)]
            rows.extend(tiles)
            rate = samples.acceptance[i]
            shown = "not sampled (failed)" if np.isnan(rate) else f"acceptance {rate:.2f}"
            hole = masks[i] < 0.5
            where = "in the hole" if hole.any() else "over the image"
            captions.append(f"{name}   {shown}   std {where} {spread[i][hole if hole.any() else ...].mean():.3f}")
        tiles = enlarge(np.stack(rows), big_scale)
        columns = self.sampling.samples + 2
        big_masks = enlarge(np.asarray(masks)[..., None], big_scale)[..., 0]
        for i in range(len(inputs.names)):
            for c in range(columns - 1):  # the hole's border on the input and on every sample
                tiles[i * columns + c] = outline(tiles[i * columns + c], big_masks[i])
        headers = ["masked", *(f"sample {k + 1}" for k in range(self.sampling.samples)), f"std (white {scale:.2f})"]
        return labelled_grid(tiles, columns, headers=headers, captions=captions, scale=1)
