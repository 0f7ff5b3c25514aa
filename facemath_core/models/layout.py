"""The model folder layout, read side: which versions a `<base>/<name>/<version>/` folder holds, and their metadata.

One rule for what counts as a version, shared by export, the embedded backend, the stand-in server and deploy: a
folder whose name is a positive integer and that holds a `saved_model.pb` (a half-written or stray numeric folder
is not a version). Only the standard library here, so the reading side never pulls in training or TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePath

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
    run: str  # where the newest version came from, in one line: its run, data, steps and checkpoint
    error: str = ""  # why its metadata could not be read, if it could not
    card: tuple[str, ...] = ()  # the newest version's model card as lines (`card_lines`)


def describe_models(root: str | Path) -> list[ModelInfo]:
    """Every model under a base path with its versions and the training run and card of its newest version."""
    root = Path(root)
    infos = []
    for name in model_names(root):
        versions = tuple(existing_versions(root / name))
        try:
            metadata = read_metadata(root / name / str(versions[-1]))
            run, error, card = origin_summary(metadata), "", tuple(card_lines(metadata))
        except FacemathError as exc:
            run, error, card = "", str(exc), ()
        infos.append(ModelInfo(name, versions, versions[-1], run, error, card))
    return infos


def origin_summary(metadata: dict) -> str:
    """Where a model came from: its training run, or for a composite (the projector) the models it joins."""
    components = metadata.get("components")
    if isinstance(components, dict) and not metadata.get("training"):
        parts = [f"{name} version {c.get('version')}" for name, c in sorted(components.items())]
        first = next(iter(components.values()), {})
        return f"composed of {' + '.join(parts)}; {run_summary(first.get('training') or {})}"
    return run_summary(metadata.get("training") or {})


def _name(path) -> str:
    """A folder by its name: exports made before model cards recorded the full path of the training machine."""
    return PurePath(str(path).replace("\\", "/")).name


def run_summary(training: dict) -> str:
    parts = [f"run {_name(training['run'])}"] if training.get("run") else []
    if training.get("data"):
        parts.append(f"data {_name(training['data'])}")
    if training.get("steps") is not None:
        parts.append(f"{training['steps']} steps")
    if training.get("checkpoint"):
        parts.append(f"checkpoint {training['checkpoint']}")
    return ", ".join(parts) or "unknown run"


def card_lines(metadata: dict) -> list[str]:
    """A model card (models/cards.py) as `facemath info` prints it: a label, then the value. Metadata without a
    card (exports older than model cards) gives its training run in one line, its paths reduced to names."""
    card = metadata.get("card")
    if not isinstance(card, dict):
        return [f"trained   {origin_summary(metadata)}"]
    lines = []
    composed = card.get("composed_of")
    if isinstance(composed, dict):
        parts = " + ".join(f"{name} version {version}" for name, version in composed.items())
        lines.append(f"built     from {parts} (no training of its own)")
    data = card.get("data") or {}
    if data:
        where = data.get("recipe") or data.get("name") or "unknown data"
        split = f"{data['split']} split, " if data.get("split") else ""
        images = f"{split}{data['images']:,} images" if data.get("images") is not None else ""
        digest = f"{data['files']:,} files, sha256 {data['files_sha256'][:12]}" if data.get("files_sha256") else ""
        lines.append(f"data      {where}" + "".join(f"; {part}" for part in (images, digest) if part))
    training = card.get("training") or {}
    if training.get("command"):
        lines.append(f"command   {training['command']}")
        steps, planned = training.get("steps"), training.get("planned_steps")
        stopped = f" (stopped at step {steps:,} of {planned:,})" if steps and planned and steps < planned else ""
        minutes = f", {training['wall_seconds'] / 60:.0f} min" if training.get("wall_seconds") else ""
        lines.append(f"trained   {steps:,} steps{stopped}, checkpoint {training.get('checkpoint')}{minutes}")
    made = card.get("facemath") or {}
    commit = f", commit {made['commit'][:12]}" if made.get("commit") else ""
    lines.append(f"exported  by facemath {made.get('version', '?')}{commit}")
    for entry in card.get("quality") or []:
        unit = f" {entry['unit']}" if entry.get("unit") else ""
        lines.append(f"quality   {entry['measure']}: {entry['value']:g}{unit}; source {entry['source']}")
    if not card.get("quality") and not composed:
        lines.append("quality   not measured")
    if card.get("note"):
        lines.append(f"note      {card['note']}")
    return lines


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
