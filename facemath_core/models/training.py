"""Driving a training run: the run folder, resuming, checkpoints, sample grids, TensorBoard, progress, Ctrl-C.

The model classes (`gan.DCGAN`, `vae.VAE`, `oracle.Oracle`, all `trainable.TrainableModel`s, listed in
`model_kinds.KINDS`) own their train steps; everything with a side effect lives here, in Keras callbacks, so a train
step stays one pure `tf.function`.

A run folder holds:
    run.json            what was trained, on what, with which options; steps done and wall time so far
    checkpoints/        tf.train.Checkpoint of the networks and their optimizers (every --checkpoint-every steps)
    samples/            step_NNNNNN.png grids from a fixed batch of inputs (every --sample-every steps)
    logs/               TensorBoard summaries (losses, sample grids)
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import LOCK_NAME, folder_lock, remove_path
from facemath_core.base.text import plural
from facemath_core.base.version import __version__
from facemath_core.data.images import from_unit, image_grid, save_png
from facemath_core.data.pipeline import load_split
from facemath_core.models.architectures import ArchConfig
from facemath_core.models.distribute import (
    WriteTarget,
    check_batch,
    is_chief,
    make_strategy,
    synchronize_batch_norm,
)
from facemath_core.models.kinds import model_kind
from facemath_core.models.runs import (  # noqa: F401 (TrainingInterrupted: re-exported)
    Placement,
    TrainingInterrupted,
    TrainOptions,
    checkpoint_problem,
    has_checkpoint,
    latest_checkpoint,
    read_run,
    run_arch,
    write_run,
)

# Fewer images than this cannot train anything (batch normalisation over a handful of images is noise); above it
# the batch shrinks to the data when --batch-size asks for more images than there are (`fit_batch_size`).
MIN_IMAGES = 8


def build_model(kind: str, cfg: ArchConfig, options: TrainOptions):
    """The Keras model for a kind of run, compiled with its optimizers."""
    return model_kind(kind).build(cfg, options)


def fit_batch_size(options: TrainOptions, images: int, warn=None) -> TrainOptions:
    """The options with the batch no larger than the data: a small folder trains with one batch of all of it."""
    if images >= options.batch_size:
        return options
    if warn:
        warn(f"--batch-size {options.batch_size}: only {images} training images; using batches of {images}")
    return replace(options, batch_size=images)


def _load_training_data(data_dir: str, cfg: ArchConfig, kind: str, split: str):

    faces = load_split(data_dir, cfg.image_size, split)
    if len(faces.names) < MIN_IMAGES:
        raise FacemathError(
            f"--data {data_dir}: {plural(len(faces.names), 'image')} in the {split} split; need at least {MIN_IMAGES}"
            + (" (--split all trains on every face of the folder)" if split != "all" else "")
        )
    if model_kind(kind).needs_labels and faces.attributes is None:
        raise FacemathError(
            f"--data {data_dir}: the {kind} needs attributes, and this folder has no list_attr_celeba.txt"
        )
    labels = None if faces.attributes is None else (faces.attributes > 0).astype(np.float32)
    return faces, faces.images, labels


# The progress line must fit an 80-column terminal with its bar, step count and ETA: a short label, a short bar,
# and the losses with 2 decimals under short names (images per second go to TensorBoard only).
_SHORT_NAMES = {"d_loss": "d", "g_loss": "g", "reconstruction": "rec", "accuracy": "acc"}


def progress_columns():
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=8),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TimeRemainingColumn(),
    )


def progress_label(run_name: str) -> str:
    return run_name if len(run_name) <= 10 else run_name[:9] + "~"


def compact_losses(logs: dict) -> str:
    return " ".join(f"{_SHORT_NAMES.get(k, k)} {v:.2f}" for k, v in logs.items())


class _RunCallback:
    """Checkpoints, sample grids, TensorBoard scalars and a rich progress bar, all keyed to the global step."""

    def __init__(
        self, model, run_dir: Path, options: TrainOptions, manager, step_counter, total_steps, start_step, chief=True
    ):
        import keras
        import tensorflow as tf

        class Callback(keras.callbacks.Callback):
            pass

        self.keras_callback = Callback()
        self.keras_callback.on_train_batch_end = self.on_batch_end
        self.model = model
        self.run_dir = run_dir
        self.options = options
        self.manager = manager
        self.step_counter = step_counter
        self.total = total_steps
        self.start_step = start_step
        self.chief = chief
        # TensorBoard from the chief only: the workers' losses are the same all-reduced numbers.
        self.writer = tf.summary.create_file_writer(str(run_dir / "logs")) if chief else tf.summary.create_noop_writer()
        self.started = time.perf_counter()
        self.progress = None
        self.task = None
        self.last_logs: dict = {}

    def __enter__(self):
        from rich.progress import Progress

        self.progress = Progress(*progress_columns(), transient=False)
        self.progress.__enter__()
        self.task = self.progress.add_task(
            progress_label(self.run_dir.name), total=self.total, completed=self.start_step, losses=""
        )
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    @property
    def step(self) -> int:
        return int(self.step_counter.numpy())

    def on_batch_end(self, batch, logs=None):
        import tensorflow as tf

        step = self.step
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.last_logs = logs
        elapsed = time.perf_counter() - self.started
        rate = (step - self.start_step) * self.options.batch_size / max(elapsed, 1e-9)
        losses = compact_losses(logs)
        self.progress.update(self.task, completed=step, losses=losses)
        if step % 50 == 0:
            with self.writer.as_default():
                for name, value in logs.items():
                    tf.summary.scalar(name, value, step=step)
                tf.summary.scalar("images_per_second", rate, step=step)
            # Keras' metrics average over the whole fit; restart them so that the bar shows recent losses.
            for metric in self.model.metrics:
                metric.reset_state()
        if self.chief and (step % self.options.sample_every == 0 or step == self.total):
            self.save_samples(step)
        if step % self.options.checkpoint_every == 0 or step == self.total:
            self.manager.save(checkpoint_number=step)

    def save_samples(self, step: int):
        import tensorflow as tf

        images = self.model.sample_grid_images()
        if images is None:
            return
        grid = image_grid(from_unit(images), columns=8)
        save_png(self.run_dir / "samples" / f"step_{step:06d}.png", grid)
        with self.writer.as_default():
            tf.summary.image("samples", grid[None], step=step)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _holds_files(folder: Path) -> bool:
    """Whether a folder holds anything besides facemath's own lock file."""
    try:
        return any(entry.name != LOCK_NAME for entry in os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return False


def _empty(folder: Path) -> None:
    """Remove everything in a run folder but its lock file (held by this process while it trains)."""
    for entry in os.scandir(folder):
        if entry.name != LOCK_NAME:
            remove_path(entry.path)


def train(
    kind: str,
    data_dir: str,
    run_dir: str | Path,
    cfg: ArchConfig,
    options: TrainOptions,
    resume: bool = False,
    placement: Placement | None = None,
    warn=None,
    overwrite: bool = False,
) -> dict:
    """Train (or resume) a run; returns the final run record. Raises TrainingInterrupted on Ctrl-C.
    `warn(line)` hears about settings changed to fit the data (a batch larger than the data) and about a run
    started over.

    The run folder: a new run needs a new or empty folder (`overwrite` replaces a non-empty one, a run included);
    a run that stopped before its first checkpoint (kill -9, a power cut) holds nothing to continue, so a new run
    or `resume` there starts it over from step 0 (with the recorded settings on `resume`). The chief holds the
    folder's lock (`files.folder_lock`) while it trains: a second process training the same folder is refused.

    A resumed run takes its kind, architecture, data and options from run.json (only `options.steps`, when not
    None, sets a new total) and continues exactly where it stopped: the same batches and the same noise, so its
    weights are those of a run that was never interrupted.

    `placement` runs the steps under a tf.distribute strategy (see distribute.py); `options.batch_size` is then
    the global batch, and the run is, up to float rounding, the one-device run (the same batches, noise, batch
    statistics and averaged gradients), so it may be resumed under any strategy.
    """
    placement = placement or Placement()
    # First: the logical CPU devices of --cpu-replicas must be configured before TensorFlow sets up its devices.
    strategy = make_strategy(placement.strategy, placement.cpu_replicas, placement.cluster_timeout)
    run_dir = Path(run_dir)
    chief = is_chief(strategy)
    _check_run_folder(kind, run_dir, resume, overwrite, chief)  # first without the lock: refusing writes nothing
    option = "--resume" if resume else "--out"
    with folder_lock(run_dir, option, wait=0) if chief else contextlib.nullcontext():
        return _train(kind, data_dir, run_dir, cfg, options, resume, placement, warn or (lambda line: None), overwrite)


def _check_run_folder(kind: str, run_dir: Path, resume: bool, overwrite: bool, chief: bool) -> bool:
    """Refuse a run folder that cannot take this run; returns whether a new run must empty it first (a run that
    stopped before its first checkpoint, or --overwrite)."""
    if resume:
        record = read_run(run_dir)
        if record["kind"] != kind:
            raise FacemathError(
                f"--resume {run_dir}: a {record['kind']} run, not a {kind} run; continue it with "
                f"facemath train {record['kind']} --resume {run_dir}"
            )
        return False
    if not chief:
        return False
    if (run_dir / "run.json").exists():
        if has_checkpoint(run_dir) and not overwrite:
            raise FacemathError(
                f"--out {run_dir}: a run already exists there (use --resume to continue it, or --overwrite to "
                f"start it again)"
            )
        return True
    if _holds_files(run_dir):
        if not overwrite:
            raise FacemathError(
                f"--out {run_dir}: folder exists, is not empty and holds no training run; name a new folder "
                f"(or use --overwrite to replace it)"
            )
        return True
    return False


def _train(kind, data_dir, run_dir: Path, cfg, options, resume, placement, warn, overwrite) -> dict:
    import keras
    import tensorflow as tf

    strategy = make_strategy(placement.strategy, placement.cpu_replicas)
    chief = is_chief(strategy)
    # A run folder to empty before the new run writes it: --overwrite, or a run stopped before its first checkpoint.
    start_over = _check_run_folder(kind, run_dir, resume, overwrite, chief)  # again, now that the lock is held
    if resume:
        record = read_run(run_dir)
        cfg = run_arch(record, run_dir)
        steps = record["options"].get("steps") if options.steps is None else options.steps
        options = TrainOptions(**{**record["options"], "steps": steps or TrainOptions.steps})
        data_dir = record["data"]
        if not has_checkpoint(run_dir):
            warn(
                f"--resume {run_dir}: the run stopped before its first checkpoint, so nothing can be continued; "
                f"starting it over from step 0 with its recorded settings"
            )
            record, resume, start_over = None, False, True
        else:
            recorded = (record.get("placement") or {}).get("mixed_precision", False)
            if recorded != placement.mixed_precision:
                # The loss-scale optimizers' checkpoint has another structure: a silent partial restore otherwise.
                raise FacemathError(
                    f"--resume {run_dir}: the run was trained {'with' if recorded else 'without'} --mixed-precision; "
                    f"resume it {'with' if recorded else 'without'} it too"
                )
    else:
        if chief and (run_dir / "run.json").exists() and not has_checkpoint(run_dir):
            warn(f"--out {run_dir}: the run there stopped before its first checkpoint; starting it over")
        record = None
        if options.steps is None:
            options = TrainOptions(**{**asdict(options), "steps": TrainOptions.steps})
    spec = model_kind(kind)
    if record is None and spec.configure is not None:
        cfg, options = spec.configure(cfg, options)
    check_batch(options.batch_size, strategy)

    keras.utils.set_random_seed(options.seed)
    faces, images, labels = _load_training_data(data_dir, cfg, kind, options.split)
    options = fit_batch_size(options, len(images), warn)
    if spec.needs_labels:  # its outputs are the data's attributes
        cfg = ArchConfig(**{**asdict(cfg), "attribute_names": tuple(faces.attribute_names)})
    distributed = strategy.num_replicas_in_sync > 1 or placement.strategy != "one"
    # --mixed-precision: the networks' layers take the global policy when they are built (their outputs stay
    # float32, see models/architectures.py) and build_model wraps each optimizer in a LossScaleOptimizer; the policy is
    # put back at once so that nothing else in the process (export, projection) inherits it.
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if placement.mixed_precision else policy)
    try:
        with strategy.scope():
            model = build_model(kind, cfg, options)
            if placement.jit:
                model.jit_compile = True  # otherwise each kind keeps its own compile() setting
            if distributed:
                synchronize_batch_norm(model)
                # Keras builds a distributed model symbolically before fit; these models are built at
                # construction, and their optimizers' slots must exist as distributed variables: both done here.
                model.build_for_restore()
                model.built = True
    finally:
        keras.mixed_precision.set_global_policy(policy)
    model.prepare(images, labels, options)
    if options.warm_start and not resume:  # a new run's starting weights; a resumed run restores its own below
        model.warm_start(options.warm_start)

    target = WriteTarget(run_dir, strategy)
    step_counter = model.step_counter
    checkpoint = tf.train.Checkpoint(**model.checkpoint_objects())
    manager = tf.train.CheckpointManager(checkpoint, str(target.checkpoints), max_to_keep=3)
    if resume:
        model.build_for_restore()
        # Every worker restores the chief's checkpoint (the run folder is on storage all workers share).
        latest = latest_checkpoint(run_dir)
        try:
            checkpoint.restore(latest).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as exc:
            raise FacemathError(checkpoint_problem(run_dir, latest, exc)) from None
    start_step = int(step_counter.numpy())
    # The pipeline is seeded: skipping the batches already trained on gives a resumed run the batches it would
    # have had without the interruption.
    dataset = model.dataset(images, labels, options).skip(start_step)
    if record is None:
        record = {
            "kind": kind,
            "arch": cfg.to_dict(),
            "options": asdict(options),
            "data": str(Path(data_dir).resolve()),
            "data_images": len(faces.names),
            "facemath_version": __version__,
            "steps_done": 0,
            "wall_seconds": 0.0,
        }
        if target.chief:
            if start_over:
                _empty(run_dir)  # only now: every check has passed and the data has loaded
            run_dir.mkdir(parents=True, exist_ok=True)
            write_run(run_dir, record)
    record["options"]["steps"] = options.steps
    record["placement"] = {**asdict(placement), "replicas": strategy.num_replicas_in_sync}
    remaining = options.steps - start_step
    if remaining <= 0:
        target.close()
        return record

    runner = _RunCallback(model, run_dir, options, manager, step_counter, options.steps, start_step, chief=target.chief)
    started = time.perf_counter()
    interrupted = False
    # SIGTERM (a cluster's or a shell's stop) is treated like Ctrl-C: checkpoint, then stop.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with runner, warnings.catch_warnings():
            # Keras warns that shuffle=True is ignored for a tf.data input; the pipeline shuffles itself.
            warnings.filterwarnings("ignore", message=".*shuffle=True.*")
            model.fit(dataset, steps_per_epoch=remaining, epochs=1, verbose=0, callbacks=[runner.keras_callback])
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    step = int(step_counter.numpy())
    if interrupted or step % options.checkpoint_every:
        manager.save(checkpoint_number=step)  # on every worker: the save's collectives need them all
    target.close()
    record.update(
        steps_done=step,
        wall_seconds=record.get("wall_seconds", 0.0) + time.perf_counter() - started,
        final_metrics=runner.last_logs,
    )
    if target.chief:
        record.update(model.summary_record(data_dir, options))
        write_run(run_dir, record)
    if interrupted:
        raise TrainingInterrupted(
            f"interrupted at step {step}; checkpoint saved in {run_dir / 'checkpoints'} "
            f"(continue with: facemath train {kind} --resume {run_dir})"
        )
    return record
