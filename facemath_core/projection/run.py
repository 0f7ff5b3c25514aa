"""A projection run: images in, a result out, through a sink (`ProjectionRun`). The one owner of a projection: its
inputs and per-image seeds, masks (built once), restarts, resume, failures, flags, PSNR and blends, for every front
end. Where the result goes is the sink's business: `FolderSink` (a result folder: `facemath project` and
`complete`), `ShardSink` (a shard's folder of a bulk run, `--shard K/N`), `MemorySink` (the studio, whose sink
also sends events to the page; `compare`; the benches).

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.drawing import enlarge, labelled_grid, outline, scale_for
from facemath_core.base.errors import BadFileError, FacemathError, Interrupted
from facemath_core.base.files import atomic_file, check_writable, publish, remove_path
from facemath_core.base.metrics import known_psnr
from facemath_core.base.seeds import image_rng, row_seeds
from facemath_core.data.align import rewarp
from facemath_core.data.folders import collect_image_paths
from facemath_core.data.images import BadImagesError, crop_and_resize, from_unit, read_image, save_png, to_unit
from facemath_core.host.contracts import blend, check_blender, make_mask
from facemath_core.host.manager import check_params
from facemath_core.latent.latents import Latents, json_field, read_npz, save_latents, text_field, text_list
from facemath_core.models.encoders import ENCODER_OF
from facemath_core.projection.flags import out_of_domain, reasons
from facemath_core.projection.projector import (
    MODELS,
    REPORT_SECONDS,
    BatchResult,
    Interval,
    ProjectionConfig,
    Projector,
    ProjectorCache,
    resolve_start,
)
from facemath_core.projection.shards import record, select

RESUME_FILE = "resume.npz"
HISTORY_FILE = "history.jsonl"
CHECKPOINT_EVERY = 100  # steps between the checkpoints of a result folder


@dataclass
class JobInputs:
    names: list[str]  # unique display names (file names), of this shard's images
    paths: list[str]
    images: np.ndarray  # (N, S, S, 3) in [-1, 1]
    resized: list[str]
    keys: list[str] = field(default_factory=list)  # what seeds each image (facemath_core.base.seeds); default: names
    indices: list[int] = field(default_factory=list)  # each image's position among all the inputs
    shard: dict = field(default_factory=dict)  # facemath_core.projection.shards.record, for a shard of a bulk run
    # `--align`: per crop, its photo, face index, box, landmarks and transform (data.align.AlignedFace.record)
    faces: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.keys = self.keys or list(self.names)
        self.indices = self.indices or list(range(len(self.names)))

    def head(self, n: int) -> JobInputs:
        """The first n images (a run stopped early keeps the faces it reached)."""
        resized = [p for p in self.resized if p in self.paths[:n]]
        names, paths, keys, indices = self.names[:n], self.paths[:n], self.keys[:n], self.indices[:n]
        return JobInputs(names, paths, self.images[:n], resized, keys, indices, self.shard, self.faces[:n])


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
    faces = _faces_field(path, arrays)
    if faces:  # an aligned run (`--align`): its crops made again from the photos and the recorded transforms
        crops = np.stack([rewarp(face) for face in faces])
        names = [face["name"] for face in faces]
        return JobInputs(names, paths, to_unit(crops), [], text_list(path, arrays, "keys"), faces=faces)
    if "keys" not in arrays:  # written before shards existed
        return load_inputs(paths, size, resize)
    names, keys = text_list(path, arrays, "names"), text_list(path, arrays, "keys")
    indices = arrays.get("indices")
    if len(keys) != len(names) or indices is None or indices.dtype.kind not in "iu" or indices.shape != (len(names),):
        raise BadFileError(f"{path}: its keys and input indices do not match its {len(names)} images")
    inputs = read_inputs(paths, names, keys, indices.tolist(), size, resize)
    inputs.shard = json_field(path, arrays, "shard")
    return inputs


def _faces_field(path: Path, arrays: dict) -> list[dict]:
    """The aligned faces a resume file records (`--align`), [] for a run of whole images."""
    text = text_field(path, arrays, "faces", default="[]")
    try:
        faces = json.loads(text)
    except ValueError as exc:
        raise BadFileError(f"{path}: field 'faces' is not valid JSON ({exc})") from None
    names = text_list(path, arrays, "names")
    if not isinstance(faces, list) or (faces and len(faces) != len(names)):
        raise BadFileError(f"{path}: field 'faces' should list the {len(names)} aligned faces")
    if not all(isinstance(f, dict) and {"photo", "name", "transform", "size"} <= set(f) for f in faces):
        raise BadFileError(f"{path}: field 'faces' should record each face's photo, name, transform and size")
    return faces


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


@dataclass
class Prepared:
    """A run's inputs with their masks, built once (`ProjectionRun.prepare`)."""

    inputs: JobInputs
    masks: np.ndarray  # (N, S, S), 1 = a known pixel


@dataclass
class RunResult:
    """What a run produced, for every sink alike: the latents (z, losses, PSNR of the known pixels, failed and
    flagged faces, config, models), G(z), the blended completions when a mask hides pixels, why each flagged face
    was flagged, the warning lines of failed faces, and how the search started."""

    inputs: JobInputs
    masks: np.ndarray
    latents: Latents
    generated: np.ndarray  # (N, S, S, 3) in [-1, 1]
    completions: np.ndarray | None  # (N, S, S, 3) in [-1, 1], or None for plain projection
    reasons: list[str]  # per face, why it was flagged ("" if it was not)
    warnings: list[str]  # one line per face whose every restart failed
    start: str  # how the search started, in words ("E(x) of gan_encoder version 2", "uniform random z")
    cancelled: bool = False  # stopped early: the best z so far (faces of batches not reached are left out)


class Sink:
    """Where a run's progress and results go. The run calls, in order: `begin`; for each batch `step` for every
    step and `interval` whenever the compiled loop comes back, `checkpoint` every `checkpoint_every` steps (None:
    never), `batch_done`; then `finish` with the result. When anything fails (Ctrl-C included), `abandon(exc)`
    cleans up and may return the exception to raise instead. Each method does nothing here."""

    checkpoint_every: int | None = None

    def begin(self, run: ProjectionRun, prepared: Prepared, resume_from: dict | None) -> None:
        pass

    def step(self, batch: int, step: int, mean: float, terms: dict[str, float]) -> None:
        pass

    def interval(self, batch: int, interval: Interval) -> None:
        pass

    def checkpoint(self, batch: int, state: dict) -> None:
        pass

    def batch_done(self, batch: int, result: BatchResult) -> None:
        pass

    def finish(self, result: RunResult) -> None:
        pass

    def abandon(self, exc: BaseException) -> BaseException | None:
        return None


class MemorySink(Sink):
    """Keeps the result in memory (`result`) and writes nothing: the studio, `compare`, the benches."""

    def __init__(self):
        self.result: RunResult | None = None

    def finish(self, result: RunResult) -> None:
        self.result = result


class FolderSink(Sink):
    """The result folder of `facemath project` and `complete` (see the module docstring): work in
    `<out>.partial/`, history.jsonl line by line, resume.npz at every checkpoint and after each batch, the files,
    then the folder renamed to `<out>`."""

    checkpoint_every = CHECKPOINT_EVERY

    def __init__(
        self,
        out: str | Path,
        overwrite: bool = False,
        resuming: bool = False,
        progress: Callable[[int, int, float], None] | None = None,
    ):
        self.progress = progress  # (batch, steps done, mean loss of the last step), whenever the loop comes back
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
        self._checkpoint: tuple[int, int] | None = None  # (batch, step) of the last checkpoint written
        self._history = None
        self._meta: dict[str, np.ndarray] = {}
        self._saved: dict[str, np.ndarray] = {}

    @property
    def resume_file(self) -> Path:
        """The checkpoint a resumed run continues: the interrupted run's, else the finished one's."""
        return (self.partial if (self.partial / RESUME_FILE).exists() else self.out) / RESUME_FILE

    def begin(self, run: ProjectionRun, prepared: Prepared, resume_from: dict | None) -> None:
        if prepared.inputs.shard and not isinstance(self, ShardSink):
            raise ValueError("the inputs are a shard of a bulk run: write them with a ShardSink (folder_sink)")
        if not resume_from:
            remove_path(self.partial)  # only a stale one: __init__ refused a checkpoint without --overwrite
        self.partial.mkdir(parents=True, exist_ok=True)
        history = self.partial / HISTORY_FILE
        if resume_from and not history.exists() and (self.out / HISTORY_FILE).exists():
            with atomic_file(history) as handle:  # continuing a finished job
                handle.write((self.out / HISTORY_FILE).read_bytes())
        if resume_from:
            truncate_history(history, resume_from, len(run.chunks(len(prepared.inputs.names))))
        inputs = prepared.inputs
        self._meta = {
            "names": np.array(inputs.names, dtype=str),
            "paths": np.array(inputs.paths, dtype=str),
            "keys": np.array(inputs.keys, dtype=str),
            "indices": np.array(inputs.indices, np.int64),
            "shard": np.array(json.dumps(inputs.shard)),
            "faces": np.array(json.dumps(inputs.faces)),
            "config": np.array(json.dumps(run.config.to_dict())),
            # A resumed run must go on with the models it started with, not whatever is newest by then.
            "models": np.array(json.dumps(run.model_versions())),
        }
        self._history = open(history, "a" if resume_from else "w")  # noqa: SIM115 (closed by finish/abandon)

    def step(self, batch: int, step: int, mean: float, terms: dict[str, float]) -> None:
        self._history.write(json.dumps({"batch": batch, "step": step, "loss": mean, **terms}) + "\n")

    def interval(self, batch: int, interval: Interval) -> None:
        if self.progress and interval.history:
            self.progress(batch, interval.steps, interval.history[-1][1])

    def checkpoint(self, batch: int, state: dict) -> None:
        self._history.flush()
        self._write_resume({**self._saved, **_flatten_state(f"c{batch}.", state)})
        self._checkpoint = (batch, int(state["step"]))

    def batch_done(self, batch: int, result: BatchResult) -> None:
        self._saved.update(_flatten_state(f"c{batch}.", result.state))
        self._history.flush()
        self._write_resume(self._saved)
        self._checkpoint = (batch, result.steps)

    def _write_resume(self, states: dict) -> None:
        with atomic_file(self.partial / RESUME_FILE) as handle:
            np.savez(handle, **self._meta, **states)

    def _close_history(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None

    def finish(self, result: RunResult) -> None:
        self._close_history()
        self.write_files(result)
        publish(self.partial, self.out)

    def write_files(self, result: RunResult) -> None:
        """latents.npz, then one reconstruction (and completion) PNG per face and the contact sheet."""
        latents, inputs, masks = result.latents, result.inputs, result.masks
        save_latents(self.partial / "latents.npz", latents)
        if not inputs.names:
            return
        completing = result.completions is not None
        rows = []
        for i, name in enumerate(inputs.names):
            stem = Path(name).stem
            save_png(self.partial / "reconstructions" / f"{stem}.png", from_unit(result.generated[i]))
            row = [from_unit(inputs.images[i])]
            if completing:
                masked = np.where(masks[i][..., None] > 0.5, inputs.images[i], 0.0)  # hole shown mid-grey
                save_png(self.partial / "completions" / f"{stem}.png", from_unit(result.completions[i]))
                row += [from_unit(masked), from_unit(result.generated[i]), from_unit(result.completions[i])]
            else:
                row.append(from_unit(result.generated[i]))
            rows.extend(row)
        headers = (
            ["original", "masked", "reconstruction", "completion"] if completing else ["original", "reconstruction"]
        )
        sheet = contact_sheet(np.stack(rows), masks, latents, result.reasons, headers)
        save_png(self.partial / "contact_sheet.png", sheet)

    def abandon(self, exc: BaseException) -> BaseException | None:
        self._close_history()
        if isinstance(exc, KeyboardInterrupt):
            if (self.partial / RESUME_FILE).exists():
                where = f" (batch {self._checkpoint[0] + 1}, step {self._checkpoint[1]})" if self._checkpoint else ""
                return Interrupted(
                    f"interrupted; the checkpoint{where} is in {self.partial}; continue with --resume {self.out}"
                )
            remove_path(self.partial)
            return Interrupted("interrupted before the first checkpoint (every 100 steps); nothing was kept")
        if isinstance(exc, AllFailedError) or not (self.partial / RESUME_FILE).exists():
            remove_path(self.partial)  # nothing to keep, or nothing resumable in it
        return None


class ShardSink(FolderSink):
    """The result folder of one shard of a bulk run (`--shard K/N`): a folder like any other, whose latents.npz
    also says which shard it is and where each face stands among all the inputs, so `latents merge` can put the
    shards together. An empty shard (no input hashed to it) still writes a latents.npz, with no faces."""

    def write_files(self, result: RunResult) -> None:
        result.latents.shard = dict(result.inputs.shard)
        result.latents.input_index = np.array(result.inputs.indices, np.int64)
        super().write_files(result)


def folder_sink(
    out: str | Path, *, shard: bool, overwrite: bool = False, resuming: bool = False, progress=None
) -> FolderSink:
    """The sink of a command line run: a shard's folder for a shard of a bulk run, a result folder otherwise."""
    return (ShardSink if shard else FolderSink)(out, overwrite=overwrite, resuming=resuming, progress=progress)


class ProjectionRun:
    """One projection, from inputs to outputs: its inputs and their per-image seeds, the masks (built once),
    restarts, resuming, the search itself (`Projector`), failures, flags, PSNR, blending, and the result, handed
    to a `Sink` (a result folder, a shard's folder, memory and events). `facemath project` and `complete`, the
    studio, `compare` and the benches all run projections through it.

    Everything the run uses is looked up and checked here, before any work. `projectors` (a `ProjectorCache`)
    lends a projector with traced loops and checked contracts from an earlier run of the same components.
    """

    def __init__(self, backend, registry, config: ProjectionConfig, projectors: ProjectorCache | None = None):
        self.backend, self.registry = backend, registry
        self.config, self.start = resolve_start(backend, config) if config.model in MODELS else (config, "")
        self._projectors = projectors
        self.projector = (
            projectors.borrow(self.config) if projectors is not None else Projector(backend, registry, self.config)
        )
        self.mask_component = registry.get("mask", self.config.mask, option="--mask")
        self.mask_params = check_params(self.mask_component, self.config.mask_params)
        self.blender = registry.get("blender", self.config.blend, option="--blend")
        self.blend_params = check_params(self.blender, self.config.blend_params)
        check_blender(self.blender, self.blend_params, self.projector.image_size)

    def close(self) -> None:
        """Give a borrowed projector back for the next run (a run from a `ProjectorCache`)."""
        if self._projectors is not None and self.projector is not None:
            self._projectors.give_back(self.projector)
            self.projector = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def image_size(self) -> int:
        return self.projector.image_size

    def chunks(self, n: int) -> list[range]:
        return batch_ranges(n, self.config)

    def prepare(self, inputs: JobInputs, masks: np.ndarray | None = None) -> Prepared:
        """The inputs with one mask each (the mask plugin's, each drawn from its image's seed, unless `masks`
        are given): a bad mask fails here, before any work."""
        if masks is None:
            masks = build_masks(self.registry, self.config, inputs.names, self.image_size, inputs.keys)
        return Prepared(inputs, np.asarray(masks, np.float32))

    def run(
        self,
        inputs: JobInputs | Prepared,
        sink: Sink,
        resume_from: dict | None = None,
        stop: Callable[[], bool] | None = None,
        warn=print,
        report_seconds: float = REPORT_SECONDS,
    ) -> RunResult:
        """Project every image and give the result to `sink`. `resume_from`: a checkpoint (`load_resume`) to go on
        from; `stop()`, asked whenever the loop comes back (about every `report_seconds`), ends the run early with
        the best z so far; `warn` gets one line per failed face. See the module docstring for what a failure
        leaves of a folder."""
        prepared = inputs if isinstance(inputs, Prepared) else self.prepare(inputs)
        names = prepared.inputs.names
        chunks = self.chunks(len(names))
        if resume_from:
            path = getattr(sink, "resume_file", RESUME_FILE)
            check_resume_state(path, resume_from, chunks, self.config, self.projector.z_dim)
            if len(names) != len(resume_from["names"]):
                raise BadFileError(f"{path}: made for {len(resume_from['names'])} images, not {len(names)}")
        try:
            sink.begin(self, prepared, resume_from)
            with _sigterm_as_interrupt():
                result = self._run(prepared, chunks, sink, resume_from, stop, report_seconds)
            for line in result.warnings:
                warn(line)
            sink.finish(result)
        except BaseException as exc:
            replacement = sink.abandon(exc)
            if replacement is not None:
                raise replacement from None
            raise
        return result

    def _run(self, prepared: Prepared, chunks, sink: Sink, resume_from, stop, report_seconds) -> RunResult:
        cfg, inputs = self.config, prepared.inputs
        results: list[BatchResult] = []
        started = time.perf_counter()
        for c, chunk in enumerate(chunks):
            targets = np.repeat(inputs.images[chunk.start : chunk.stop], cfg.restarts, axis=0)
            masks = np.repeat(prepared.masks[chunk.start : chunk.stop], cfg.restarts, axis=0)
            state = _unflatten_state(f"c{c}.", resume_from) if resume_from else None
            keys = inputs.keys[chunk.start : chunk.stop]
            if state is not None:
                z0 = state["best_z"]
            else:
                z0 = self.projector.seeded_initial_z(targets, keys, cfg.restarts, seed=cfg.seed)
            every = sink.checkpoint_every
            result = self.projector.project(
                targets,
                masks,
                z0,
                progress=lambda step, mean, terms, c=c: sink.step(c, step, mean, terms),
                state=state,
                on_checkpoint=(lambda snapshot, c=c: sink.checkpoint(c, snapshot)) if every else None,
                checkpoint_every=every or CHECKPOINT_EVERY,
                seeds=row_seeds(cfg.seed, keys, cfg.restarts, "constraint"),
                steps=cfg.steps,
                patience=cfg.patience,
                tolerance=cfg.tolerance,
                on_interval=lambda interval, c=c: sink.interval(c, interval),
                stop=stop,
                report_seconds=report_seconds,
            )
            sink.batch_done(c, result)
            results.append(result)
            if result.stopped:
                break
        cancelled = bool(results) and results[-1].stopped
        if cancelled:  # the faces of the batches reached, with their best z so far
            chunks = chunks[: len(results)]
            prepared = Prepared(inputs.head(chunks[-1].stop), prepared.masks[: chunks[-1].stop])
        return self._outcome(prepared, chunks, results, cancelled, time.perf_counter() - started)

    def _outcome(
        self, prepared: Prepared, chunks, results: list[BatchResult], cancelled: bool, seconds: float
    ) -> RunResult:
        """G(z), the PSNR of the known pixels, flags and blends: the same for every sink."""
        inputs, masks = prepared.inputs, prepared.masks
        latents, failures = self._collect(inputs, chunks, results)
        # How long the steps took in this process (a resumed run: since the resume), for `compare --latents`.
        latents.config["projection_seconds"] = round(seconds, 3)
        if failures and len(failures) == len(latents.names):
            first = failures[0].split(";")[0]  # "face0.png: the loss became NaN or infinite at step 3"
            raise AllFailedError(
                f"every image failed ({first}); nothing was written (try a smaller --lr or smaller loss weights)"
            )
        if not inputs.names:  # an empty shard
            latents.psnr, latents.flagged = np.zeros(0, np.float32), np.zeros(0, bool)
            empty = np.zeros((0, self.image_size, self.image_size, 3), np.float32)
            return RunResult(inputs, masks, latents, empty, None, [], failures, self.start, cancelled)
        generated = self.backend.generate(latents.z, latents.model)
        latents.psnr = known_psnr(inputs.images, generated, masks)
        why = reasons(latents.losses["total"], latents.psnr, latents.failed)
        latents.flagged = np.array([bool(w) for w in why])
        latents.out_of_domain = out_of_domain(latents.psnr, self.backend.metadata(latents.model), latents.failed)
        completions = None
        if bool((masks < 0.5).any()):
            completions = np.stack(
                [
                    blend(self.blender, self.blend_params, inputs.images[i], generated[i], masks[i], name)
                    for i, name in enumerate(inputs.names)
                ]
            )
        return RunResult(inputs, masks, latents, generated, completions, why, failures, self.start, cancelled)

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
            config={
                **self.config.to_dict(),
                "backend": self.backend.describe(),
                "inputs": inputs.paths,
                **({"faces": inputs.faces} if inputs.faces else {}),
                "components": self.component_records(),
            },
            models=models,
        )
        return latents, failures

    def component_records(self) -> list[dict]:
        """Every component this run used, with the parameters it ran with and its provider (plugin, distribution,
        version), as latents.npz records them beside the config's names."""
        projector = self.projector
        used = [(component, params) for _, component, params in projector.terms]
        used += [
            (projector.optimizer_component, projector.optimizer_params),
            (projector.init_component, projector.init_params),
            (projector.constraint, projector.constraint_params),
            (self.mask_component, self.mask_params),
            (self.blender, self.blend_params),
        ]
        return [component.record(params) for component, params in used]

    def model_versions(self) -> dict[str, int]:
        """The version of every model this run uses, as recorded in latents.npz and resume.npz."""
        models = {self.projector.model: self.backend.version(self.projector.model)}
        if self.projector.needs_discriminator:
            discriminator = S.DISCRIMINATOR_OF[self.projector.model]
            models[discriminator] = self.backend.version(discriminator)
        if self.projector.init_component.needs_encoder or self.projector.encoder is not None:
            encoder = ENCODER_OF[self.projector.model]  # --init encoder, the in-domain loss: the model's own
            models[encoder] = self.backend.version(encoder)
        return models


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
        if latents.out_of_domain is not None and latents.out_of_domain[i]:
            text += "   OUT OF DOMAIN (below the model's 1st-percentile PSNR)"
        captions.append(text)
    ood = latents.out_of_domain if latents.out_of_domain is not None else np.zeros(len(why), bool)
    flagged = [bool(w) or bool(o) for w, o in zip(why, ood, strict=True)]
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
