"""A training run's record: the options it was started with, where its steps run, and its folder's run.json and
checkpoints, read and written here only.

Below the model kinds and the training loop, so that both (and the encoder checks, which read another run) can use
them without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_file


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


class TrainingInterrupted(FacemathError):
    """Ctrl-C during training: a checkpoint was saved and the run can be resumed."""


def read_run(run_dir: str | Path) -> dict:
    """A run folder's record; a missing or damaged run.json is a one-line error naming it."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FacemathError(f"{run_dir}: not a training run (no run.json)")
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return record
    except (OSError, ValueError) as error:
        raise FacemathError(f"{path}: unreadable run record ({error})") from None


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether a run folder holds a checkpoint to resume or start from."""
    return bool(list((Path(run_dir) / "checkpoints").glob("ckpt-*.index")))


def write_run(run_dir: Path, record: dict) -> None:
    with atomic_file(run_dir / "run.json", "w") as handle:
        json.dump(record, handle, indent=2)
