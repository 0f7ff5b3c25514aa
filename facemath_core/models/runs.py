"""A training run's record: the options it was started with, where its steps run, and its folder's run.json and
checkpoints, read and written here only.

Below the model kinds and the training loop, so that both (and the encoder checks, which read another run) can use
them without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from facemath_core.base.errors import FacemathError, Interrupted
from facemath_core.base.files import atomic_file
from facemath_core.models.architectures import ArchConfig


@dataclass(frozen=True)
class TrainOptions:
    steps: int | None = 10_000  # the total to reach; None on --resume: the recorded total
    batch_size: int = 64
    seed: int = 0
    lr: float = 2e-4
    beta1: float = 0.5
    d_lr: float | None = None  # two time-scale update rule: a separate discriminator learning rate
    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    beta: float = 1.0  # VAE: weight of the KL term
    latent_recon: float = 0.0  # GAN: weight of the InfoGAN-style term ||Q(G(z)) - z||^2 (0: the Radford recipe)
    gamma: float = 1e-2  # VAE-GAN: weight of the Dis_l likelihood against the GAN loss in the decoder's loss
    sample_every: int = 500
    checkpoint_every: int = 1000
    split: str = "train"
    generator: str = ""  # encoder: the exported generator it inverts (its version folder, once the run starts)
    generator_version: int | None = None  # encoder: --model-version of --generator (None: the newest)
    warm_start: str = ""  # encoder: a GAN run trained with --latent-recon whose Q network is E's starting point


@dataclass(frozen=True)
class Placement:
    """Where and how a run's steps execute; not part of the run (a run may resume under another placement)."""

    strategy: str = "one"  # one | mirrored | multi-worker (distribute.STRATEGIES)
    cpu_replicas: int = 0  # mirrored over N logical CPU devices instead of the GPUs
    mixed_precision: bool = False  # mixed_float16 compute, float32 weights, dynamic loss scaling
    jit: bool = False  # XLA-compile the train step
    cluster_timeout: float = 600.0  # multi-worker: seconds to wait for every worker of TF_CONFIG to start


class TrainingInterrupted(Interrupted):
    """Ctrl-C or SIGTERM during training: a checkpoint was saved and the run can be resumed (exit 130, as every
    interrupted command: docs/errors.md)."""


def read_run(run_dir: str | Path) -> dict:
    """A run folder's record; a missing or damaged run.json is a one-line error naming it: not JSON, not an
    object, a field missing or of the wrong type, an option this facemath does not know, an architecture that
    cannot be built (`run_arch`)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FacemathError(f"{run_dir}: not a training run (no run.json)")
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as error:
        raise FacemathError(f"{path}: unreadable run record ({error})") from None
    problem = _record_problem(record)
    if problem:
        raise FacemathError(f"{path}: damaged run record: {problem}")
    run_arch(record, run_dir)
    return record


# The fields every run record has, and their JSON types (what training and export read).
_RECORD_FIELDS = {"kind": str, "arch": dict, "options": dict, "data": str}
_OPTION_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _record_problem(record: dict) -> str | None:
    for key, kind in _RECORD_FIELDS.items():
        if key not in record:
            return f"no {key!r}"
        if not isinstance(record[key], kind):
            return f"{key!r} must be a JSON {'object' if kind is dict else 'string'}, not {_json_type(record[key])}"
    if not isinstance(record.get("placement", {}), dict):
        return f"'placement' must be a JSON object, not {_json_type(record['placement'])}"
    for key in ("steps_done", "wall_seconds"):
        if key in record and (not isinstance(record[key], int | float) or isinstance(record[key], bool)):
            return f"{key!r} must be a number, not {_json_type(record[key])}"
    options = record["options"]
    known = {f.name: f for f in fields(TrainOptions)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        return f"unknown option {unknown[0]!r} (this facemath knows {', '.join(known)})"
    for key, value in options.items():
        annotation = str(known[key].type)  # "int", "float | None", ...: the dataclass's own annotation
        if value is None and "None" in annotation:
            continue
        accepted = tuple(t for part in annotation.split("|") for t in _OPTION_TYPES.get(part.strip(), ()))
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            return f"option {key!r} is {json.dumps(value)}, not {annotation}"
    return None


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def run_arch(record: dict, run_dir: str | Path) -> ArchConfig:
    """The architecture a run record holds, or a one-line error naming its run.json."""
    try:
        return ArchConfig.from_dict(record["arch"])
    except (FacemathError, TypeError, ValueError) as error:
        reason = str(error).split(": ", 1)[-1] if isinstance(error, FacemathError) else str(error)
        raise FacemathError(
            f"{Path(run_dir) / 'run.json'}: damaged run record: 'arch' {json.dumps(record['arch'])[:200]}: {reason}"
        ) from None


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether a run folder holds a checkpoint to resume or start from."""
    return bool(list((Path(run_dir) / "checkpoints").glob("ckpt-*.index")))


def write_run(run_dir: Path, record: dict) -> None:
    with atomic_file(run_dir / "run.json", "w") as handle:
        json.dump(record, handle, indent=2)


def latest_checkpoint(run_dir: str | Path) -> str | None:
    """The newest checkpoint of a run (`RUN/checkpoints/ckpt-N`, the prefix TensorFlow restores), by its number:
    found from the `.index` files themselves, so that a run killed while it wrote the `checkpoint` state file
    still resumes from what it saved; None without one."""
    numbered = []
    for index in (Path(run_dir) / "checkpoints").glob("ckpt-*.index"):
        number = index.name[len("ckpt-") : -len(".index")]
        if number.isdigit():
            numbered.append((int(number), index.with_suffix("")))
    return str(max(numbered)[1]) if numbered else None


def checkpoint_problem(run_dir: str | Path, latest: str | None, error: BaseException) -> str:
    """One line for a checkpoint that cannot be restored (TensorFlow's DataLossError for a checksum mismatch or a
    garbage `.index`, an assertion for networks that do not match): which one, why, and what to do."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    # TensorFlow names the files by their full paths; the line already names the checkpoint, so the reason keeps
    # the file names only and its own words (the checksum verdict) fit the line however deep the run folder lies.
    reason = reason.replace(f"{Path(run_dir) / 'checkpoints'}/", "")
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    older = sorted(
        (p for p in (Path(run_dir) / "checkpoints").glob("ckpt-*.index") if str(p.with_suffix("")) != latest),
        key=lambda p: int(p.name[5:-6]) if p.name[5:-6].isdigit() else -1,
    )
    name = Path(latest).name if latest else "ckpt"
    advice = (
        f"delete {name}.index and {name}.data-* to go back to {older[-1].with_suffix('').name}"
        if older
        else "no older checkpoint is left: start the run again (facemath train ... --overwrite)"
    )
    return f"{latest}: the checkpoint is damaged and cannot be read ({reason}); {advice}"
