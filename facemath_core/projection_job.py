"""A projection job: image files in, a result folder out (what `facemath project` and `facemath complete` run).

The result folder:
    latents.npz         z per image, final loss per term, models and versions, the full config
    reconstructions/    G(z) per image
    completions/        the blended completion per image (when a mask hides pixels)
    contact_sheet.png   one row per image: target | masked | G(z) | blended  (target | G(z) without a mask)
    history.jsonl       per step and batch: the mean of every loss term
    resume.npz          optimizer state, so `--resume` can continue with more steps

Work happens in `<out>.partial/`, which is renamed to `<out>` when everything is written; an interrupted job
leaves only the `.partial` folder, and `--resume <out>` picks it up from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facemath_core import signatures as S
from facemath_core.contracts import blend, check_blender
from facemath_core.dataset import IMAGE_DIR
from facemath_core.errors import FacemathError
from facemath_core.images import (
    IMAGE_SUFFIXES,
    BadImagesError,
    crop_and_resize,
    from_unit,
    image_grid,
    read_image,
    save_png,
    to_unit,
)
from facemath_core.latents import Latents, save_latents
from facemath_core.plugins import check_params
from facemath_core.projection import BatchResult, ProjectionConfig, Projector

RESUME_FILE = "resume.npz"
HISTORY_FILE = "history.jsonl"


@dataclass
class JobInputs:
    names: list[str]  # unique display names (file names)
    paths: list[str]
    images: np.ndarray  # (N, S, S, 3) in [-1, 1]
    resized: list[str]


def collect_image_paths(arguments: list[str]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted); a missing path is an error."""
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir() and (path / IMAGE_DIR).is_dir():
            path = path / IMAGE_DIR  # a CelebA-layout folder (img_align_celeba/ + list_attr_celeba.txt)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                raise FacemathError(f"{path}: folder has no images")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise FacemathError(f"{path}: no such file or folder")
    if not paths:
        raise FacemathError("no images given")
    return paths


def load_inputs(arguments: list[str], size: int, resize: bool = True) -> JobInputs:
    paths = collect_image_paths(arguments)
    names, images, problems, resized = [], [], [], []
    seen: dict[str, int] = {}
    for path in paths:
        try:
            rgb = read_image(path)
        except FacemathError as exc:
            problems.append(str(exc))
            continue
        if rgb.shape[:2] != (size, size):
            if not resize:
                problems.append(
                    f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is not the model's {size}x{size} "
                    f"(drop --no-resize to resize it)"
                )
                continue
            resized.append(str(path))
            rgb = crop_and_resize(rgb, size)
        name = path.name
        if name in seen:  # the same file name in two folders: keep both, distinguishably
            seen[name] += 1
            name = f"{path.stem}-{seen[name]}{path.suffix}"
        seen.setdefault(name, 1)
        names.append(name)
        images.append(rgb)
    if problems:
        raise BadImagesError(problems, len(paths))
    return JobInputs(names, [str(p) for p in paths], to_unit(np.stack(images)), resized)


def build_masks(registry, config: ProjectionConfig, names: list[str], size: int) -> np.ndarray:
    from facemath_core.contracts import make_mask

    component = registry.get("mask", config.mask, option="--mask")
    params = check_params(component, config.mask_params)
    rng = np.random.default_rng([config.seed, 7])
    return np.stack([make_mask(component, params, (size, size), rng, name) for name in names])


def _flatten_state(prefix: str, state: dict) -> dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        if key == "optimizer":
            for i, v in enumerate(value):
                out[f"{prefix}optimizer.{i}"] = np.asarray(v)
        else:
            out[prefix + key] = np.asarray(value)
    return out


def _unflatten_state(prefix: str, arrays: dict) -> dict | None:
    keys = [k for k in arrays if k.startswith(prefix)]
    if not keys:
        return None
    state = {k[len(prefix) :]: arrays[k] for k in keys if ".optimizer." not in "." + k[len(prefix) :]}
    optimizer = sorted((int(k.rsplit(".", 1)[1]), arrays[k]) for k in keys if k[len(prefix) :].startswith("optimizer."))
    state = {k: v for k, v in state.items() if not k.startswith("optimizer.")}
    state["optimizer"] = [v for _, v in optimizer]
    return state


class ProjectionJob:
    """Runs projection (or completion) over many images in batches and writes the result folder."""

    def __init__(
        self,
        backend,
        registry,
        config: ProjectionConfig,
        out: str | Path,
        overwrite: bool = False,
        resuming: bool = False,
    ):
        self.backend, self.registry, self.config = backend, registry, config
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        if self.out.exists() and not (overwrite or resuming):
            raise FacemathError(
                f"--out {self.out}: already exists (use --overwrite to replace it, or --resume "
                f"{self.out} to continue it)"
            )
        self.projector = Projector(backend, registry, config)
        self.blender = registry.get("blender", config.blend, option="--blend")
        self.blend_params = check_params(self.blender, config.blend_params)
        check_blender(self.blender, self.blend_params, self.projector.image_size)

    # --- batching -------------------------------------------------------------------------------------------

    def chunks(self, n: int) -> list[range]:
        per_batch = max(1, self.config.batch_size // self.config.restarts)
        return [range(i, min(i + per_batch, n)) for i in range(0, n, per_batch)]

    def _initial_z(self, targets: np.ndarray, chunk_index: int) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, chunk_index])
        z = self.projector.initial_z(targets, rng)
        if self.config.restarts > 1 and self.config.init == "encoder":
            # The first try starts at the encoder's z, the others at random points of the prior.
            rows = np.arange(len(targets)) % self.config.restarts != 0
            bound = self.projector.bound
            z[rows] = rng.uniform(-bound, bound, (int(rows.sum()), z.shape[1]))
        return z

    # --- running --------------------------------------------------------------------------------------------

    def run(self, inputs: JobInputs, progress=None, resume_from: dict | None = None, warn=print) -> Latents:
        cfg = self.config
        masks = build_masks(self.registry, cfg, inputs.names, self.projector.image_size)
        if not resume_from:
            shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True, exist_ok=True)
        if resume_from and not (self.partial / HISTORY_FILE).exists() and (self.out / HISTORY_FILE).exists():
            shutil.copy(self.out / HISTORY_FILE, self.partial / HISTORY_FILE)  # continuing a finished job
        chunks = self.chunks(len(inputs.names))
        results: list[BatchResult] = []
        saved_states: dict[str, np.ndarray] = {}
        history = open(self.partial / HISTORY_FILE, "a" if resume_from else "w")
        meta = {
            "names": np.array(inputs.names),
            "paths": np.array(inputs.paths),
            "config": np.array(json.dumps(cfg.to_dict())),
        }
        try:
            for c, chunk in enumerate(chunks):
                targets = np.repeat(inputs.images[chunk.start : chunk.stop], cfg.restarts, axis=0)
                chunk_masks = np.repeat(masks[chunk.start : chunk.stop], cfg.restarts, axis=0)
                state = _unflatten_state(f"c{c}.", resume_from) if resume_from else None
                z0 = state["best_z"] if state is not None else self._initial_z(targets, c)

                def on_step(step, mean, terms, c=c):
                    history.write(json.dumps({"batch": c, "step": step, "loss": mean, **terms}) + "\n")
                    if progress:
                        progress(c, step, mean)

                def on_checkpoint(snapshot, c=c):
                    history.flush()
                    self._write_resume(meta, {**saved_states, **_flatten_state(f"c{c}.", snapshot)})

                result = self.projector.project(
                    targets, chunk_masks, z0, progress=on_step, state=state, on_checkpoint=on_checkpoint
                )
                saved_states.update(_flatten_state(f"c{c}.", result.state))
                self._write_resume(meta, saved_states)
                results.append(result)
        except FacemathError:
            if not (self.partial / RESUME_FILE).exists():  # nothing to resume: leave nothing half-written
                shutil.rmtree(self.partial, ignore_errors=True)
            raise
        finally:
            history.close()
        latents = self._collect(inputs, chunks, results, warn)
        self._write_outputs(inputs, masks, latents)
        self._finish()
        return latents

    def _write_resume(self, meta: dict, states: dict) -> None:
        from facemath_core.files import atomic_file

        with atomic_file(self.partial / RESUME_FILE) as handle:
            np.savez(handle, **meta, **states)

    def _collect(self, inputs: JobInputs, chunks, results: list[BatchResult], warn) -> Latents:
        k = self.config.restarts
        zs, totals, failed = [], [], []
        terms: dict[str, list] = {spec.name: [] for spec in self.config.losses}
        for chunk, result in zip(chunks, results, strict=True):
            totals_k = np.where(np.isfinite(result.total), result.total, np.inf).reshape(len(chunk), k)
            best = np.argmin(totals_k, axis=1)  # best of K restarts per image
            rows = np.arange(len(chunk)) * k + best
            zs.append(result.z[rows])
            totals.append(result.total[rows])
            for name in terms:
                terms[name].append(result.terms[name][rows])
            chunk_failed = np.array(
                [all(r in result.failed for r in range(i * k, i * k + k)) for i in range(len(chunk))]
            )
            failed.append(chunk_failed)
            for i in np.nonzero(chunk_failed)[0]:
                step, row = min((result.failed[r], r) for r in range(i * k, i * k + k))
                culprits = ", ".join(result.failed_terms.get(row, [])) or "the weighted total"
                warn(
                    f"{inputs.names[chunk.start + i]}: the loss became NaN or infinite at step {step} "
                    f"(not finite: {culprits}); stopped that image and kept its last finite z"
                )
        model = self.projector.model
        models = {model: self.backend.version(model)}
        if self.projector.needs_discriminator:
            models[S.DISCRIMINATOR] = self.backend.version(S.DISCRIMINATOR)
        if self.config.init == "encoder":
            models[S.VAE_ENCODER] = self.backend.version(S.VAE_ENCODER)
        return Latents(
            names=inputs.names,
            z=np.concatenate(zs),
            family=self.config.model,
            model=model,
            model_version=models[model],
            source="projection",
            losses={"total": np.concatenate(totals), **{k: np.concatenate(v) for k, v in terms.items()}},
            failed=np.concatenate(failed),
            config={**self.config.to_dict(), "backend": self.backend.describe(), "inputs": inputs.paths},
            models=models,
        )

    def _write_outputs(self, inputs: JobInputs, masks: np.ndarray, latents: Latents) -> None:
        save_latents(self.partial / "latents.npz", latents)
        generated = self.backend.generate(latents.z, latents.model)
        completing = bool((masks < 0.5).any())
        rows = []
        for i, name in enumerate(inputs.names):
            stem = Path(name).stem
            save_png(self.partial / "reconstructions" / f"{stem}.png", from_unit(generated[i]))
            row = [inputs.images[i]]
            if completing:
                masked = np.where(masks[i][..., None] > 0.5, inputs.images[i], 0.0)  # hole shown mid-grey
                blended = blend(self.blender, self.blend_params, inputs.images[i], generated[i], masks[i], name)
                save_png(self.partial / "completions" / f"{stem}.png", from_unit(blended))
                row += [masked, generated[i], blended]
            else:
                row.append(generated[i])
            rows.extend(row)
        columns = 4 if completing else 2
        save_png(self.partial / "contact_sheet.png", image_grid(from_unit(np.stack(rows)), columns))

    def _finish(self) -> None:
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, old)
            os.replace(self.partial, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.partial, self.out)


def load_resume(out: str | Path) -> tuple[Path, dict]:
    """Find the resume state of a job folder (finished) or its `.partial` sibling (interrupted)."""
    out = Path(out)
    for folder in (out.with_name(out.name + ".partial"), out):
        path = folder / RESUME_FILE
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                return folder, {k: data[k] for k in data.files}
    raise FacemathError(f"--resume {out}: no {RESUME_FILE} there or in {out}.partial (nothing to resume)")


def resumed_config(arrays: dict, steps: int | None) -> ProjectionConfig:
    config = ProjectionConfig.from_dict(json.loads(str(arrays["config"])))
    return replace(config, steps=steps) if steps else config
