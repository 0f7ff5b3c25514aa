"""The model folder layout, read side: which versions a `<base>/<name>/<version>/` folder holds, and their metadata.

One rule for what counts as a version, shared by export, the embedded backend, the stand-in server and deploy: a
folder whose name is a positive integer and that holds a `saved_model.pb` (a half-written or stray numeric folder
is not a version). Only the standard library here, so the reading side never pulls in training or TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.runtime import import_tensorflow_quietly


def existing_versions(model_dir: str | Path) -> list[int]:
    """The versions under one model's folder, oldest first; [] when the folder does not exist."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.name.isdigit() and int(p.name) > 0 and (p / "saved_model.pb").is_file()
    )


def model_names(root: str | Path) -> list[str]:
    """The models under a base path: subfolders with at least one version."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and existing_versions(p))


def metadata_path(version_dir: str | Path) -> Path:
    return Path(version_dir) / "assets.extra" / S.METADATA_FILE


def read_metadata(version_dir: str | Path) -> dict:
    """The export's metadata (assets.extra/facemath_metadata.json); one-line errors for a missing or bad file."""
    path = metadata_path(version_dir)
    if not path.is_file():
        raise FacemathError(f"{version_dir}: not a facemath export (no assets.extra/{S.METADATA_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FacemathError(f"{path}: bad metadata JSON ({_one_line(exc)})") from None
    except OSError as exc:
        raise FacemathError(f"{path}: cannot read metadata ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise FacemathError(f"{path}: bad metadata JSON (an object expected, found {type(data).__name__})")
    return data


def load_saved_model(version_dir: str | Path):
    """`tf.saved_model.load`, with a corrupt or truncated SavedModel reported as one line naming the folder."""

    tf = import_tensorflow_quietly()
    try:
        return tf.saved_model.load(str(version_dir))
    except Exception as exc:  # TF raises several unrelated types (DecodeError, OSError, *Error from C++) here
        raise FacemathError(f"{version_dir}: corrupt SavedModel ({_one_line(exc)})") from None


@dataclass(frozen=True)
class ModelInfo:
    """One model of a base path, as `facemath info` lists it."""

    name: str
    versions: tuple[int, ...]
    newest: int
    run: str  # where the newest version was trained: data, steps and checkpoint
    error: str = ""  # why its metadata could not be read, if it could not


def describe_models(root: str | Path) -> list[ModelInfo]:
    """Every model under a base path with its versions and the training run of its newest version."""
    root = Path(root)
    infos = []
    for name in model_names(root):
        versions = tuple(existing_versions(root / name))
        try:
            run, error = origin_summary(read_metadata(root / name / str(versions[-1]))), ""
        except FacemathError as exc:
            run, error = "", str(exc)
        infos.append(ModelInfo(name, versions, versions[-1], run, error))
    return infos


def origin_summary(metadata: dict) -> str:
    """Where a model came from: its training run, or for a composite (the projector) the models it joins."""
    components = metadata.get("components")
    if isinstance(components, dict) and not metadata.get("training"):
        parts = [f"{name} version {c.get('version')}" for name, c in sorted(components.items())]
        first = next(iter(components.values()), {})
        return f"composed of {' + '.join(parts)}; {run_summary(first.get('training') or {})}"
    return run_summary(metadata.get("training") or {})


def run_summary(training: dict) -> str:
    parts = [f"run {training['run']}"] if training.get("run") else []
    if training.get("data"):
        parts.append(f"data {training['data']}")
    if training.get("steps") is not None:
        parts.append(f"{training['steps']} steps")
    if training.get("checkpoint"):
        parts.append(f"checkpoint {training['checkpoint']}")
    return ", ".join(parts) or "unknown run"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
