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


def find(latents: Latents, name: str, origin: str = "--latents") -> int:
    """Index of a latent by file name or stem; an unknown name lists close matches."""
    if name in latents.names:
        return latents.names.index(name)
    stems = [Path(n).stem for n in latents.names]
    if name in stems:
        return stems.index(name)
    import difflib

    close = difflib.get_close_matches(name, stems, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; it has {len(stems)} names, e.g. {stems[0]}"
    raise FacemathError(f"{origin}: no latent named {name!r}{hint}")


def encode_images(backend, names: list[str], paths: list[str], images: np.ndarray) -> Latents:
    """VAE-encoder latents (the posterior means) in the same format as projections."""
    from facemath_core import signatures as S

    z_mean, z_log_var = backend.encode(images)
    return Latents(
        names=names,
        z=z_mean,
        family="vae",
        model=S.VAE_DECODER,
        model_version=backend.version(S.VAE_DECODER),
        source="encoder",
        losses={"posterior_std_mean": np.exp(0.5 * z_log_var).mean(axis=1)},
        config={"backend": backend.describe(), "inputs": paths},
        models={S.VAE_ENCODER: backend.version(S.VAE_ENCODER), S.VAE_DECODER: backend.version(S.VAE_DECODER)},
    )


def decode(backend, latents: Latents, z: np.ndarray) -> np.ndarray:
    """Images for z with the model that made the latents; a z size that model cannot take is an error."""
    expected = backend.metadata(latents.model)["z_dim"]
    if z.shape[-1] != expected:
        raise FacemathError(
            f"latents of {z.shape[-1]} dimensions, but the {latents.model} model takes {expected}: "
            f"these latents come from another model"
        )
    return backend.generate(z, latents.model)
