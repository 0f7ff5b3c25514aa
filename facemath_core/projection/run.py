"""A projection job: image files in, a result folder out (what `facemath project` and `facemath complete` run).

The result folder:
    latents.npz         z per image, final loss per term, known-pixel PSNR, flagged outliers (projection.flags),
                        models and versions, the full config
    reconstructions/    G(z) per image
    completions/        the blended completion per image (when a mask hides pixels)
    contact_sheet.png   one row per image: target | masked | G(z) | blended  (target | G(z) without a mask), columns
                        named, each row captioned with name, loss and known-pixel PSNR, flagged rows framed in red
    history.jsonl       per step and batch: the mean of every loss term
    resume.npz          optimizer state, so `--resume` can continue with more steps

Work happens in `<out>.partial/`, which is renamed to `<out>` when everything is written (`files.publish`). A
checkpoint (resume.npz) is written there every 100 steps and after each batch. What a failed run leaves:
- Ctrl-C or SIGTERM: the `.partial` folder if it holds a checkpoint (the message says how to continue:
  `--resume <out>`), nothing otherwise; exit 130.
- any other error (a plugin raising, a full disk, a bug): the same rule: `.partial` stays only when it is a
  resumable checkpoint, so a rerun can continue instead of starting again.
- every image failing (NaN or infinite loss): nothing; exit 1.
A rerun that finds `<out>.partial/` refuses to delete it unless told `--overwrite`; `--resume <out>` continues it
and cuts history.jsonl back to the checkpoint, so no step is logged twice.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.drawing import enlarge, labelled_grid, outline, scale_for
from facemath_core.base.errors import BadFileError, FacemathError, Interrupted
from facemath_core.base.files import atomic_file, check_writable, publish, remove_path
from facemath_core.base.metrics import known_psnr
from facemath_core.base.seeds import image_rng, row_seeds
from facemath_core.data.folders import collect_image_paths
from facemath_core.data.images import BadImagesError, crop_and_resize, from_unit, read_image, save_png, to_unit
from facemath_core.host.contracts import blend, check_blender, make_mask
from facemath_core.host.manager import check_params
from facemath_core.latent.latents import Latents, json_field, read_npz, save_latents, text_list
from facemath_core.models.encoders import ENCODER_OF
from facemath_core.projection.flags import reasons
from facemath_core.projection.projector import BatchResult, ProjectionConfig, Projector
from facemath_core.projection.shards import record, select

RESUME_FILE = "resume.npz"
HISTORY_FILE = "history.jsonl"


@dataclass
class JobInputs:
    names: list[str]  # unique display names (file names), of this shard's images
    paths: list[str]
    images: np.ndarray  # (N, S, S, 3) in [-1, 1]
    resized: list[str]
    keys: list[str] = field(default_factory=list)  # what seeds each image (facemath_core.base.seeds); default: names
    indices: list[int] = field(default_factory=list)  # each image's position among all the inputs
    shard: dict = field(default_factory=dict)  # facemath_core.projection.shards.record, for a shard of a bulk run

    def __post_init__(self):
        self.keys = self.keys or list(self.names)
        self.indices = self.indices or list(range(len(self.names)))


def display_names(paths: list[Path]) -> list[str]:
    """Unique names for the inputs: the file name, with -2, -3 ... for the same name seen again."""
    names, seen = [], {}
    for path in paths:
        name = path.name
        if name in seen:  # the same file name in two folders: keep both, distinguishably
            seen[name] += 1
            name = f"{path.stem}-{seen[name]}{path.suffix}"
        seen.setdefault(name, 1)
        names.append(name)
    return names


def load_inputs(arguments: list[str], size: int, resize: bool = True, shard=None) -> JobInputs:
    """Read the images the arguments name; with `shard` (shards.Shard) only that shard's. Names are
    made unique over all the inputs, so a face has the same name in its shard as in an unsharded run."""

    paths = collect_image_paths(arguments)
    names = display_names(paths)
    keys = [path.name for path in paths]  # the path relative to the folder it was found in (folders are flat)
    chosen = select(keys, shard)
    inputs = read_inputs(
        [paths[i] for i in chosen],
        [names[i] for i in chosen],
        [keys[i] for i in chosen],
        chosen,
        size,
        resize,
        total=len(paths),
    )
    if shard is not None:
        inputs.shard = record(shard, names)
    return inputs


def read_inputs(paths, names, keys, indices, size: int, resize: bool, total: int | None = None) -> JobInputs:
    """Read and size the images; every unreadable one is listed in one BadImagesError."""
    images, problems, resized = [], [], []
    for path in map(Path, paths):
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
        images.append(rgb)
    if problems:
        raise BadImagesError(problems, len(paths) if total is None else total)
    stacked = to_unit(np.stack(images)) if images else np.zeros((0, size, size, 3), np.float32)
    return JobInputs(list(names), [str(p) for p in paths], stacked, resized, list(keys), list(indices))


def resumed_inputs(arrays: dict, size: int, resize: bool = True, path: str | Path = RESUME_FILE) -> JobInputs:
    """The inputs of the run a resume file (`path`, for messages) belongs to, with the names, keys and shard it
    recorded (a shard's names were made unique over all the inputs, which its own paths alone cannot repeat)."""

    path = Path(path)
    paths = [str(p) for p in arrays["paths"]]
    if "keys" not in arrays:  # written before shards existed
        return load_inputs(paths, size, resize)
    names, keys = text_list(path, arrays, "names"), text_list(path, arrays, "keys")
    indices = arrays.get("indices")
    if len(keys) != len(names) or indices is None or indices.dtype.kind not in "iu" or indices.shape != (len(names),):
        raise BadFileError(f"{path}: its keys and input indices do not match its {len(names)} images")
    inputs = read_inputs(paths, names, keys, indices.tolist(), size, resize)
    inputs.shard = json_field(path, arrays, "shard")
    return inputs


def build_masks(
    registry, config: ProjectionConfig, names: list[str], size: int, keys: list[str] | None = None
) -> np.ndarray:
    """One mask per image; a random mask is drawn from the image's own seed (facemath_core.base.seeds), so it does
    not depend on the other images."""

    component = registry.get("mask", config.mask, option="--mask")
    params = check_params(component, config.mask_params)
    keys = names if keys is None else keys
    masks = [
        make_mask(component, params, (size, size), image_rng(config.seed, key, "mask"), name)
        for name, key in zip(names, keys, strict=True)
    ]
    return np.stack(masks) if masks else np.zeros((0, size, size), np.float32)


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
        self.out = check_writable(out)  # also refuses --out . before with_name() below could fail on it
        self.partial = self.out.with_name(self.out.name + ".partial")
        if self.out.exists() and not (overwrite or resuming):
            raise FacemathError(
                f"--out {self.out}: already exists (use --overwrite to replace it, or --resume "
                f"{self.out} to continue it)"
            )
        if self.partial.exists() and not (overwrite or resuming):
            raise FacemathError(
                f"--out {self.out}: {self.partial} holds an interrupted run; continue it with --resume {self.out}, "
                f"or start again with --overwrite (which deletes it)"
            )
        self.known_psnr: np.ndarray | None = None  # per image, dB, set when the outputs are written
        self._checkpoint: tuple[int, int] | None = None  # (batch, step) of the last checkpoint written
        self.projector = Projector(backend, registry, config)
        self.blender = registry.get("blender", config.blend, option="--blend")
        self.blend_params = check_params(self.blender, config.blend_params)
        check_blender(self.blender, self.blend_params, self.projector.image_size)

    # --- batching -------------------------------------------------------------------------------------------

    def chunks(self, n: int) -> list[range]:
        return batch_ranges(n, self.config)

    # --- running --------------------------------------------------------------------------------------------

    def run(self, inputs: JobInputs, progress=None, resume_from: dict | None = None, warn=print) -> Latents:
        """Project every image and publish the result folder; see the module docstring for what a failure leaves."""
        chunks = self.chunks(len(inputs.names))
        if resume_from:
            folder = self.partial if (self.partial / RESUME_FILE).exists() else self.out
            check_resume_state(folder / RESUME_FILE, resume_from, chunks, self.config, self.projector.z_dim)
            if len(inputs.names) != len(resume_from["names"]):
                raise BadFileError(
                    f"{folder / RESUME_FILE}: made for {len(resume_from['names'])} images, not {len(inputs.names)}"
                )
        else:
            remove_path(self.partial)  # only a stale one: __init__ refused a checkpoint without --overwrite
        try:
            with _sigterm_as_interrupt():
                latents = self._run(inputs, chunks, progress, resume_from, warn)
        except KeyboardInterrupt:
            raise self._interrupted() from None
        except AllFailedError:
            remove_path(self.partial)
            raise
        except BaseException:
            if not (self.partial / RESUME_FILE).exists():
                remove_path(self.partial)  # nothing resumable in it
            raise
        return latents

    def _run(self, inputs, chunks, progress, resume_from, warn) -> Latents:
        cfg = self.config
        self.partial.mkdir(parents=True, exist_ok=True)
        if resume_from and not (self.partial / HISTORY_FILE).exists() and (self.out / HISTORY_FILE).exists():
            with atomic_file(self.partial / HISTORY_FILE) as handle:  # continuing a finished job
                handle.write((self.out / HISTORY_FILE).read_bytes())
        if resume_from:
            truncate_history(self.partial / HISTORY_FILE, resume_from, len(chunks))
        masks = build_masks(self.registry, cfg, inputs.names, self.projector.image_size, inputs.keys)
        results: list[BatchResult] = []
        saved_states: dict[str, np.ndarray] = {}
        meta = {
            "names": np.array(inputs.names, dtype=str),
            "paths": np.array(inputs.paths, dtype=str),
            "keys": np.array(inputs.keys, dtype=str),
            "indices": np.array(inputs.indices, np.int64),
            "shard": np.array(json.dumps(inputs.shard)),
            "config": np.array(json.dumps(cfg.to_dict())),
            # A resumed run must go on with the models it started with, not whatever is newest by then.
            "models": np.array(json.dumps(self.model_versions())),
        }
        with open(self.partial / HISTORY_FILE, "a" if resume_from else "w") as history:
            for c, chunk in enumerate(chunks):
                targets = np.repeat(inputs.images[chunk.start : chunk.stop], cfg.restarts, axis=0)
                chunk_masks = np.repeat(masks[chunk.start : chunk.stop], cfg.restarts, axis=0)
                state = _unflatten_state(f"c{c}.", resume_from) if resume_from else None
                chunk_keys = inputs.keys[chunk.start : chunk.stop]
                if state is not None:
                    z0 = state["best_z"]
                else:
                    z0 = self.projector.seeded_initial_z(targets, chunk_keys, cfg.restarts)

                def on_step(step, mean, terms, c=c):
                    history.write(json.dumps({"batch": c, "step": step, "loss": mean, **terms}) + "\n")
                    if progress:
                        progress(c, step, mean)

                def on_checkpoint(snapshot, c=c):
                    history.flush()
                    self._write_resume(meta, {**saved_states, **_flatten_state(f"c{c}.", snapshot)})
                    self._checkpoint = (c, int(snapshot["step"]))

                result = self.projector.project(
                    targets,
                    chunk_masks,
                    z0,
                    progress=on_step,
                    state=state,
                    on_checkpoint=on_checkpoint,
                    seeds=row_seeds(cfg.seed, chunk_keys, cfg.restarts, "constraint"),
                )
                saved_states.update(_flatten_state(f"c{c}.", result.state))
                history.flush()
                self._write_resume(meta, saved_states)
                self._checkpoint = (c, result.steps)
                results.append(result)
        latents, failures = self._collect(inputs, chunks, results)
        if failures and len(failures) == len(latents.names):
            first = failures[0].split(";")[0]  # "face0.png: the loss became NaN or infinite at step 3"
            raise AllFailedError(
                f"every image failed ({first}); nothing was written (try a smaller --lr or smaller loss weights)"
            )
        for line in failures:
            warn(line)
        self._write_outputs(inputs, masks, latents)
        self._finish()
        return latents

    def _interrupted(self) -> Interrupted:
        if (self.partial / RESUME_FILE).exists():
            where = f" (batch {self._checkpoint[0] + 1}, step {self._checkpoint[1]})" if self._checkpoint else ""
            return Interrupted(
                f"interrupted; the checkpoint{where} is in {self.partial}; continue with --resume {self.out}"
            )
        remove_path(self.partial)
        return Interrupted("interrupted before the first checkpoint (every 100 steps); nothing was kept")

    def _write_resume(self, meta: dict, states: dict) -> None:
        with atomic_file(self.partial / RESUME_FILE) as handle:
            np.savez(handle, **meta, **states)

    def _collect(self, inputs: JobInputs, chunks, results: list[BatchResult]) -> tuple[Latents, list[str]]:
        """The best of K restarts per image, and one line per image whose every restart failed."""
        k = self.config.restarts
        zs, totals, failed, failures = [], [], [], []
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
                failures.append(
                    f"{inputs.names[chunk.start + i]}: the loss became NaN or infinite at step {step} "
                    f"(not finite: {culprits}); stopped that image and kept its last finite z"
                )
        model = self.projector.model
        models = self.model_versions()

        def joined(parts, empty):  # an empty shard has no batches
            return np.concatenate(parts) if parts else empty

        no_values = np.zeros(0, np.float32)
        latents = Latents(
            names=inputs.names,
            z=joined(zs, np.zeros((0, self.projector.z_dim), np.float32)),
            family=self.config.model,
            model=model,
            model_version=models[model],
            source="projection",
            losses={"total": joined(totals, no_values), **{k: joined(v, no_values) for k, v in terms.items()}},
            failed=joined(failed, np.zeros(0, bool)),
            config={**self.config.to_dict(), "backend": self.backend.describe(), "inputs": inputs.paths},
            models=models,
            shard=dict(inputs.shard),
            input_index=np.array(inputs.indices, np.int64) if inputs.shard else None,
        )
        return latents, failures

    def model_versions(self) -> dict[str, int]:
        """The version of every model this run uses, as recorded in latents.npz and resume.npz."""
        models = {self.projector.model: self.backend.version(self.projector.model)}
        if self.projector.needs_discriminator:
            models[S.DISCRIMINATOR] = self.backend.version(S.DISCRIMINATOR)
        if self.projector.init_component.needs_encoder or self.projector.encoder is not None:
            encoder = ENCODER_OF[self.projector.model]  # --init encoder, the in-domain loss: the model's own
            models[encoder] = self.backend.version(encoder)
        return models

    def _write_outputs(self, inputs: JobInputs, masks: np.ndarray, latents: Latents) -> None:
        if not inputs.names:  # an empty shard: a latents file with no faces, so a merge sees every shard
            latents.psnr, latents.flagged = np.zeros(0, np.float32), np.zeros(0, bool)
            self.known_psnr = latents.psnr
            save_latents(self.partial / "latents.npz", latents)
            return
        generated = self.backend.generate(latents.z, latents.model)
        latents.psnr = known_psnr(inputs.images, generated, masks)
        why = reasons(latents.losses["total"], latents.psnr, latents.failed)
        latents.flagged = np.array([bool(w) for w in why])
        self.known_psnr = latents.psnr  # for the summary line
        save_latents(self.partial / "latents.npz", latents)
        completing = bool((masks < 0.5).any())
        rows = []
        for i, name in enumerate(inputs.names):
            stem = Path(name).stem
            save_png(self.partial / "reconstructions" / f"{stem}.png", from_unit(generated[i]))
            row = [from_unit(inputs.images[i])]
            if completing:
                masked = np.where(masks[i][..., None] > 0.5, inputs.images[i], 0.0)  # hole shown mid-grey
                blended = blend(self.blender, self.blend_params, inputs.images[i], generated[i], masks[i], name)
                save_png(self.partial / "completions" / f"{stem}.png", from_unit(blended))
                row += [from_unit(masked), from_unit(generated[i]), from_unit(blended)]
            else:
                row.append(from_unit(generated[i]))
            rows.extend(row)
        headers = (
            ["original", "masked", "reconstruction", "completion"] if completing else ["original", "reconstruction"]
        )
        save_png(self.partial / "contact_sheet.png", contact_sheet(np.stack(rows), masks, latents, why, headers))

    def _finish(self) -> None:
        publish(self.partial, self.out)


def contact_sheet(tiles: np.ndarray, masks: np.ndarray, latents: Latents, why: list[str], headers) -> np.ndarray:
    """One row per face, columns named; each row captioned with its name, final loss and known-pixel PSNR, and
    flagged rows framed in red with the reason. The mask's border is drawn on the masked column (and on the
    completion, where the generator's pixels begin)."""
    columns = len(headers)
    scale = scale_for(tiles.shape[1])
    tiles = enlarge(tiles, scale)
    if columns == 4:
        for i, mask in enumerate(masks):
            big = enlarge(mask[None, ..., None], scale)[0, ..., 0]
            for c in (1, 3):
                tiles[i * columns + c] = outline(tiles[i * columns + c], big)
    captions = []
    for i, name in enumerate(latents.names):
        text = f"{name}   loss {latents.losses['total'][i]:.4g}   PSNR {latents.psnr[i]:.1f} dB"
        if latents.failed is not None and latents.failed[i]:
            text += "   FAILED (NaN)"
        elif why[i]:
            text += f"   FLAGGED: {why[i]}"
        captions.append(text)
    flagged = [bool(w) for w in why]
    return labelled_grid(tiles, columns, headers=headers, captions=captions, flagged=flagged, scale=1)


class AllFailedError(FacemathError):
    """Every image's loss became NaN or infinite: there is no result to publish."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (kill, a batch scheduler's time limit) stops a run the way Ctrl-C does, keeping its checkpoint."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def load_resume(out: str | Path) -> tuple[Path, dict]:
    """Find the resume state of a job folder (finished) or its `.partial` sibling (interrupted).

    A damaged resume.npz (truncated, not an archive, pickles, a bad config) is a one-line error naming it."""

    out = Path(out)
    for folder in (out.with_name(out.name + ".partial"), out):
        path = folder / RESUME_FILE
        if path.exists():
            arrays = read_npz(path, "resume file")
            names, paths = text_list(path, arrays, "names"), text_list(path, arrays, "paths")
            if len(names) != len(paths):
                raise BadFileError(f"{path}: {len(names)} names but {len(paths)} image paths")
            try:
                config = ProjectionConfig.from_dict(json_field(path, arrays, "config"))
            except FacemathError as exc:
                raise BadFileError(f"{path}: bad config: {exc}") from None
            except (TypeError, KeyError, ValueError, AttributeError) as exc:
                raise BadFileError(f"{path}: field 'config' is not a projection config ({exc!r})") from None
            # Checked here, before any work: the saved batches must fit the images and settings it records.
            first = arrays.get("c0.best_z")
            z_dim = first.shape[-1] if first is not None and first.ndim == 2 else 0
            check_resume_state(path, arrays, batch_ranges(len(names), config), config, z_dim)
            resumed_models(path, arrays)
            return folder, arrays
    raise FacemathError(f"--resume {out}: no {RESUME_FILE} there or in {out}.partial (nothing to resume)")


def resumed_models(path: Path, arrays: dict) -> dict[str, int]:
    """The model versions a checkpoint was made with; {} for one written before they were recorded."""

    if "models" not in arrays:
        return {}
    models = json_field(path, arrays, "models")
    if not isinstance(models, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 1 for k, v in models.items()
    ):
        raise BadFileError(f"{path}: field 'models' is not a mapping of model names to versions")
    return models


def resumed_config(arrays: dict, steps: int | None) -> ProjectionConfig:
    """The config of the run being resumed; `steps` (when given) is the new total."""
    config = ProjectionConfig.from_dict(json.loads(str(arrays["config"])))
    return replace(config, steps=steps) if steps is not None else config


# What a batch's saved state must hold (besides term_* and optimizer.*), by shape: n rows, D z dimensions.
_STATE_SHAPES = {
    "variable": ("n", "d"),
    "best_z": ("n", "d"),
    "active": ("n",),
    "best_total": ("n",),
    "last_improved": ("n",),
    "step": (),
}


def batch_ranges(n: int, config: ProjectionConfig) -> list[range]:
    """The images of each batch: batch_size rows hold batch_size // restarts images with their K restarts."""
    per_batch = max(1, config.batch_size // config.restarts)
    return [range(i, min(i + per_batch, n)) for i in range(0, n, per_batch)]


def check_resume_state(path: Path, arrays: dict, chunks: list[range], config: ProjectionConfig, z_dim: int) -> None:
    """Refuse a resume file whose saved batches do not fit this run (other images, batch size, model)."""
    for c, chunk in enumerate(chunks):
        state = _unflatten_state(f"c{c}.", arrays)
        if state is None:
            continue  # a batch the interrupted run never reached starts afresh
        sizes = {"n": len(chunk) * config.restarts, "d": z_dim}
        for key, shape in _STATE_SHAPES.items():
            value = state.get(key)
            expected = tuple(sizes[s] for s in shape)
            if value is None or value.shape != expected or value.dtype.kind not in "fiub":
                found = "missing" if value is None else f"{value.dtype} {value.shape}"
                raise BadFileError(
                    f"{path}: batch {c + 1} state {key!r} should be numbers of shape {expected}, {found}"
                )
        if not np.isfinite(state["best_z"]).all():
            raise BadFileError(f"{path}: batch {c + 1} holds NaN or infinite latents")
        if not 0 <= int(state["step"]) <= 10**9:
            raise BadFileError(f"{path}: batch {c + 1} step {int(state['step'])} is out of range")


def truncate_history(path: Path, arrays: dict, batches: int) -> None:
    """Cut history.jsonl back to the checkpoint: a killed run logged steps after it, which resuming runs again."""
    if not path.exists():
        return
    reached = {}
    for c in range(batches):
        key = f"c{c}.step"
        reached[c] = int(arrays[key]) if key in arrays else 0
    kept = []
    for line in path.read_text(errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line)
            keep = 0 < int(record["step"]) <= reached.get(int(record["batch"]), 0)
        except (ValueError, KeyError, TypeError):
            keep = False  # a line cut short by the kill
        if keep:
            kept.append(line if line.endswith("\n") else line + "\n")
    with atomic_file(path, "w") as handle:
        handle.writelines(kept)
