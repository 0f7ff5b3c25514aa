"""Model cards: how to reproduce an exported model, never a path of the machine it was trained on; and rewriting
the metadata of an exported version in place, its weights untouched.

A card is the `card` field of an export's metadata (`assets.extra/facemath_metadata.json` and the `metadata`
signature, which TF Serving clients read):

- `data`: the training folder's name, its recipe when known (`facemath data synth --count N --seed S ...`, from
  the `synth_recipe.json` that `data synth` writes beside the attribute file), the number of its files and the
  SHA-256 of their sorted relative paths, one per line, the recipe itself left out (what
  `cd DIR && find . -type f ! -path ./synth_recipe.json -printf '%P\\n' | LC_ALL=C sort | sha256sum` prints: the
  digest names the faces and their labels, which the recipe only describes), the split trained on and its
  images;
- `training`: the `facemath train` command line of the run (the data and the run named by their folder names), the
  steps trained, the checkpoint exported and the wall time;
- `facemath`: the version and the git commit that exported it (None when facemath is not run from a checkout);
- `quality`: what was measured, each `{measure, value, unit, source}`.

`rewrite_metadata(version_dir, change)` replaces an export's metadata without retraining: the metadata JSON
constants inside `saved_model.pb` and `assets.extra/facemath_metadata.json` are rewritten, a new `fingerprint.pb`
is computed, and every other file (the weights in `variables/`, the warmup records) is carried over byte for byte.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields
from pathlib import Path

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir, folder_lock
from facemath_core.base.version import __version__
from facemath_core.data.folders import RECIPE_FILE, read_recipe, recipe_command
from facemath_core.data.tfrecords import is_shard_folder, read_index
from facemath_core.models.architectures import ArchConfig
from facemath_core.models.layout import metadata_path, read_metadata
from facemath_core.models.runs import TrainOptions

CARD_VERSION = 1

# An absolute path of some machine: POSIX (/...), Windows (C:\..., C:/..., \\server\...), or a home or scratch
# folder anywhere in a string.
_MACHINE_PATH = re.compile(r"^(/|[A-Za-z]:[\\/]|\\\\)|/root/|/home/|/tmp/|/work/|/Users/")


def machine_paths(value, where: str = "") -> Iterator[tuple[str, str]]:
    """(key path, string) for every string in a JSON value that is or holds an absolute path of a machine."""
    if isinstance(value, str):
        if _MACHINE_PATH.search(value):
            yield where or "(the value)", value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from machine_paths(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from machine_paths(item, f"{where}[{i}]")


def check_portable(metadata: dict, what: str) -> None:
    """Refuse metadata that would carry a path of this machine into an export: one line naming the key."""
    found = next(machine_paths(metadata), None)
    if found is not None:
        key, text = found
        raise FacemathError(f"{what}: metadata field {key} holds a path of this machine ({text!r}); name it instead")


# --- cards from a training run ----------------------------------------------------------------------------------


def files_digest(folder: str | Path) -> tuple[int, str] | None:
    """(number of files, SHA-256 of their sorted relative paths, one per line) of a folder; None if it is gone."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    names = [name for name in names if name != RECIPE_FILE]  # provenance of the data, not the data
    text = "".join(f"{name}\n" for name in names)  # bytewise order: what `LC_ALL=C sort` gives
    return len(names), hashlib.sha256(text.encode("utf-8")).hexdigest()


def facemath_commit() -> str | None:
    """The git commit of the facemath checkout this code runs from, with "-dirty" when it has local changes; None
    for an installed wheel (no .git beside the package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):  # no git on this machine
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if status.returncode == 0 and status.stdout.strip() else "")


def portable_options(options: Mapping) -> dict:
    """A run's options with paths reduced to names: the generator an encoder inverts as `<model>/<version>` (what
    `encoders.inverted_generator` reads), a warm-start run by its folder name."""
    options = dict(options)
    if options.get("generator"):
        version_dir = Path(options["generator"])
        options["generator"] = f"{version_dir.parent.name}/{version_dir.name}"
    if options.get("warm_start"):
        options["warm_start"] = Path(options["warm_start"]).name
    return options


def _flag(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def train_command(kind: str, data: str, run: str, arch: Mapping, options: Mapping) -> str:
    """The `facemath train` command line of a run: the data and the run by name, then every architecture and
    training option that differs from its default (defaults are those of the facemath version on the card)."""
    words = ["facemath", "train", kind, "--data", data, "--out", run]
    arch_defaults, option_defaults = ArchConfig(), TrainOptions()
    if kind == "encoder":  # the generator decides the size and prior; --warm-start decides the width
        arch_flags = [] if options.get("warm_start") else [("ndf", "--ndf")]
    else:
        arch_flags = [("image_size", "--image-size"), ("z_dim", "--z-dim"), ("ngf", "--ngf"), ("ndf", "--ndf")]
        if kind not in S.VARIATIONAL_FAMILIES:  # their prior is N(0, I) whatever --z-dist says (kinds.py)
            arch_flags += [("z_distribution", "--z-dist")]
    for key, flag in arch_flags:
        if key in arch and arch[key] != getattr(arch_defaults, key):
            words += [flag, _flag(arch[key])]
    if arch.get("spectral_norm"):
        words.append("--spectral-norm")
    for field in fields(TrainOptions):
        key, value = field.name, options.get(field.name, getattr(option_defaults, field.name))
        if key == "generator" and value:
            base, _, version = str(value).rpartition("/")
            words += ["--generator", f"exported_models/{Path(base).name or base}", "--model-version", version]
        elif key == "generator_version":
            continue  # with --generator
        elif key == "warm_start" and value:
            words += ["--warm-start", Path(value).name]
        elif value != getattr(option_defaults, key) and value is not None:
            words += [f"--{key.replace('_', '-')}", _flag(value)]
    return " ".join(words)


def round_trip(kind: str) -> str:
    """What a run's held-out PSNR measures: Dec(Enc(x)) for the VAE and VAE-GAN, G(E(x)) for the GAN encoder."""
    return "Dec(Enc(x))" if kind in S.VARIATIONAL_FAMILIES else "G(E(x))"


def training_quality(record: Mapping) -> list[dict]:
    """What a run measured on its held-out faces when it stopped (run.json), as card quality entries."""
    quality = []
    faces = record.get("held_out_images")
    faces = f"{faces:,}" if isinstance(faces, int) else faces
    if record.get("held_out_psnr") is not None:
        quality.append(
            {
                "measure": f"{round_trip(record.get('kind', ''))} PSNR, {faces} held-out faces",
                "value": round(float(record["held_out_psnr"]), 2),
                "unit": "dB",
                "source": "run.json held_out_psnr",
            }
        )
    accuracy = record.get("held_out_accuracy")
    if isinstance(accuracy, Mapping) and accuracy:
        worst = min(accuracy, key=accuracy.get)
        quality.append(
            {
                "measure": f"held-out attribute accuracy, lowest of {len(accuracy)} ({worst}), {faces} faces",
                "value": round(float(accuracy[worst]), 4),
                "unit": "",
                "source": "run.json held_out_accuracy",
            }
        )
    return quality


def data_recipe(data_dir: str | Path | None) -> str | None:
    """The `facemath data synth` command that made a run's data, from the recipe it recorded in the face folder
    (or, for TFRecord shards, the recipe `data pack` copied from the folder it packed); None otherwise."""
    if not data_dir:
        return None
    recipe, name = read_recipe(data_dir), Path(data_dir).name
    if recipe is None and is_shard_folder(data_dir):
        try:
            index = read_index(data_dir)
        except FacemathError:
            return None
        recipe, name = index.get("recipe"), Path(str(index.get("source") or name)).name
    return recipe_command(recipe, name) if isinstance(recipe, dict) else None


def run_card(record: Mapping, data_dir: str | Path | None, run_dir: str | Path) -> dict:
    """The card of a model exported from a training run (`record`: its run.json, `run_dir`: its folder)."""
    data_name = Path(data_dir).name if data_dir else None
    digest = files_digest(data_dir) if data_dir else None
    run = Path(run_dir).name
    options = record.get("options") or {}
    return {
        "card_version": CARD_VERSION,
        "data": {
            "name": data_name,
            "recipe": data_recipe(data_dir),
            "files": digest[0] if digest else None,
            "files_sha256": digest[1] if digest else None,
            "split": options.get("split", "train"),
            "images": record.get("data_images"),
        },
        "training": {
            "command": train_command(record["kind"], data_name or "DATA", run, record.get("arch") or {}, options),
            "run": run,
            "steps": record.get("steps_done"),
            "planned_steps": options.get("steps"),
            "checkpoint": record.get("checkpoint"),
            "wall_seconds": round(float(record.get("wall_seconds", 0.0)), 1),
        },
        "facemath": {"version": __version__, "commit": facemath_commit()},
        "quality": training_quality(record),
    }


def composite_card(components: Mapping[str, Mapping]) -> dict:
    """The card of a model built from other exports (the projector): which ones, and no training of its own."""
    return {
        "card_version": CARD_VERSION,
        "composed_of": {name: component.get("version") for name, component in sorted(components.items())},
        "facemath": {"version": __version__, "commit": facemath_commit()},
        "quality": [],
    }


# --- rewriting an export's metadata -----------------------------------------------------------------------------


def _is_metadata(value) -> bool:
    return isinstance(value, dict) and "model" in value and "signatures" in value


def _string_constants(saved_model) -> Iterator:
    """Every Const node of a SavedModel that holds strings: in the graph and in every function of its library."""
    for meta_graph in saved_model.meta_graphs:
        nodes = [*meta_graph.graph_def.node]
        for function in meta_graph.graph_def.library.function:
            nodes += [*function.node_def]
        for node in nodes:
            if node.op == "Const" and "value" in node.attr and node.attr["value"].tensor.string_val:
                yield node.attr["value"].tensor


def _component_metadata(version_dir: Path, metadata: dict, embedded: dict) -> dict | None:
    """The current metadata of a model another export is built from (the projector's generator and
    discriminator), read from its own version folder beside this one; None when it is not there."""
    name = embedded.get("model", "")
    for base, component in (metadata.get("components") or {}).items():
        if name == base or name.endswith("_" + base):
            folder = version_dir.parent.parent / name / str(component.get("version"))
            if metadata_path(folder).is_file():
                return read_metadata(folder)
    return None


def rewrite_metadata(version_dir: str | Path, change: Callable[[dict], dict]) -> dict:
    """Replace the metadata of one exported version, in place, without touching its weights; returns the new
    metadata.

    `change` gets a copy of the current metadata and returns the new one, e.g. to add a field:
    `rewrite_metadata(models / "generator" / "2", lambda m: {**m, "landmarks": template})`. The new metadata goes
    everywhere a client reads it: the `metadata` signature's constant in `saved_model.pb` (TF Serving and the
    embedded backend's TF2 loader both answer from it) and `assets.extra/facemath_metadata.json`. Metadata of
    other exports embedded in this one (the projector holds its generator's and discriminator's) is refreshed
    from those exports' folders beside it, so rewrite the components first. `fingerprint.pb` is computed anew;
    `variables/` and every other file are carried over byte for byte (hard links where the file system has them).
    The version folder is swapped whole (`files.atomic_dir`) under the model base path's lock, and a metadata that
    would hold a path of this machine is refused.
    """
    from google.protobuf.message import DecodeError  # protobuf comes with TensorFlow: deferred with it
    from tensorflow.core.protobuf import saved_model_pb2  # imports TensorFlow: deferred until a rewrite

    version_dir = Path(version_dir)
    old = read_metadata(version_dir)
    new = change(copy.deepcopy(old))
    if not isinstance(new, dict) or not _is_metadata(new):
        raise FacemathError(f"{version_dir}: the new metadata must be an object with 'model' and 'signatures'")
    check_portable(new, str(version_dir))
    new_json = json.dumps(new, sort_keys=True)
    saved_model = saved_model_pb2.SavedModel()
    pb_path = version_dir / "saved_model.pb"
    try:
        saved_model.ParseFromString(pb_path.read_bytes())
    except (OSError, DecodeError) as exc:
        raise FacemathError(f"{pb_path}: cannot read the SavedModel ({exc})") from None
    own = 0
    for tensor in _string_constants(saved_model):
        for i, value in enumerate(tensor.string_val):
            try:
                embedded = json.loads(value)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if not _is_metadata(embedded):
                continue
            if embedded == old:
                tensor.string_val[i], own = new_json.encode(), own + 1
                continue
            refreshed = _component_metadata(version_dir, new, embedded)
            if refreshed is None:
                check_portable(embedded, f"{version_dir}: metadata of {embedded.get('model')} inside it")
            else:
                tensor.string_val[i] = json.dumps(refreshed, sort_keys=True).encode()
    if not own:
        raise FacemathError(f"{version_dir}: no metadata signature holding facemath_metadata.json in saved_model.pb")
    with folder_lock(version_dir.parent.parent, "--models"), atomic_dir(version_dir) as tmp:
        for path in version_dir.rglob("*"):
            target = tmp / path.relative_to(version_dir)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif path.name not in ("saved_model.pb", "fingerprint.pb", S.METADATA_FILE):
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)  # the same bytes, not even a copy
                except OSError:
                    shutil.copy2(path, target)
        (tmp / "saved_model.pb").write_bytes(saved_model.SerializeToString(deterministic=True))
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / S.METADATA_FILE).write_text(json.dumps(new, indent=2, sort_keys=True))
        _write_fingerprint(tmp)
    return new


def _write_fingerprint(folder: Path) -> None:
    """fingerprint.pb for a SavedModel folder, as tf.saved_model.save writes it (hashes of the graph, the
    signatures, the object graph and the checkpoint); left out if this TensorFlow cannot make one (it is optional:
    loaders only report it)."""
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting  # deferred with TensorFlow
    except ImportError:
        return
    (folder / "fingerprint.pb").write_bytes(fingerprinting.CreateFingerprintDef(str(folder)))
