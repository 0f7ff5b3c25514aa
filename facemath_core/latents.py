"""The latents file (`latents.npz`): z per image plus where it came from. No pickles: plain numpy arrays only.

Written by `facemath project` (GAN projections) and `facemath encode` (VAE encodings); read by everything that
does arithmetic on faces. A file records its model family, so mixing models in one expression is caught.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemath_core.errors import FacemathError
from facemath_core.files import atomic_file


@dataclass
class Latents:
    names: list[str]
    z: np.ndarray  # (N, D) float32
    family: str  # "gan" or "vae"
    model: str  # the exported model that decodes z ("generator", "vae_decoder")
    model_version: int
    source: str  # "projection" or "encoder"
    losses: dict[str, np.ndarray] = field(default_factory=dict)  # per term, (N,)
    failed: np.ndarray | None = None  # (N,) bool
    config: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # every model used, name -> version

    def index(self, name: str) -> int:
        return self.names.index(name)


def save_latents(path: str | Path, latents: Latents) -> None:
    arrays = {
        "names": np.array(latents.names, dtype=str),
        "z": np.asarray(latents.z, np.float32),
        "family": np.array(latents.family),
        "model": np.array(latents.model),
        "model_version": np.array(latents.model_version, np.int64),
        "source": np.array(latents.source),
        "failed": np.zeros(len(latents.names), bool) if latents.failed is None else np.asarray(latents.failed, bool),
        "config": np.array(json.dumps(latents.config, sort_keys=True)),
        "models": np.array(json.dumps(latents.models, sort_keys=True)),
        **{f"loss_{k}": np.asarray(v, np.float32) for k, v in latents.losses.items()},
    }
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)


def load_latents(path: str | Path) -> Latents:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise FacemathError(f"{path}: no such latents file") from None
    except (OSError, ValueError) as exc:
        raise FacemathError(f"{path}: not a latents file ({exc})") from None
    missing = {"names", "z", "family", "model"} - set(arrays)
    if missing:
        raise FacemathError(f"{path}: not a facemath latents file (missing {', '.join(sorted(missing))})")
    return Latents(
        names=[str(n) for n in arrays["names"]],
        z=arrays["z"].astype(np.float32),
        family=str(arrays["family"]),
        model=str(arrays["model"]),
        model_version=int(arrays.get("model_version", 0)),
        source=str(arrays.get("source", "")),
        losses={k[5:]: v for k, v in arrays.items() if k.startswith("loss_")},
        failed=arrays.get("failed"),
        config=json.loads(str(arrays.get("config", "{}"))),
        models=json.loads(str(arrays.get("models", "{}"))),
    )
