"""Bulk projection: cutting the inputs into N shards (`--shard K/N`) and merging the shards' results back.

Shard K of N (K counts from 1, as in "shard 1 of 3"; a Kubernetes Indexed Job's 0-based JOB_COMPLETION_INDEX is
K - 1) holds every input whose key (facemath_core.base.seeds: its file name) hashes to K - 1 modulo N. The hash is
SHA-256, so the split is the same on every machine and does not depend on the order of the inputs. Every shard
sees the whole input list (the same command line) and records in its latents.npz:

    shard        {"index": K, "count": N, "inputs": how many input files in all, "digest": SHA-256 of their
                 names in order}
    input_index  each face's position among all the inputs

Because projection seeds every face from --seed and its own key (facemath_core.base.seeds), a face gets the same z in
a shard as in one run over everything, and `merge` can put the shards together into the unsharded result.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemath_core.base.errors import BadFileError, FacemathError
from facemath_core.base.seeds import stable_hash
from facemath_core.latent.latents import Latents, load_latents, save_latents
from facemath_core.projection.flags import flag_outliers

LATENTS_FILE = "latents.npz"
# What a merged folder copies from its shards when every shard has it: one PNG per face, by name.
IMAGE_FOLDERS = ("reconstructions", "completions")
# Config fields that differ between shards by design (each shard's own files; where its model ran; how long it took).
_PER_SHARD = ("inputs", "backend", "projection_seconds")


# More shards than any bulk run has workers (a Kubernetes Indexed Job's completions are capped at 100,000): a
# larger N is a typo, and a merge must never list a trillion missing shards.
MAX_SHARDS = 100_000


@dataclass(frozen=True)
class Shard:
    index: int  # K, 1-based
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """'K/N' with 1 <= K <= N; anything else is a FacemathError saying what a shard looks like."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise FacemathError(f"{text!r} is not K/N (shard K of N, e.g. 1/4)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise FacemathError(f"{text}: N must be at least 1")
    if count > MAX_SHARDS:
        raise FacemathError(f"{text}: N must be at most {MAX_SHARDS:,} (one worker per shard)")
    if not 1 <= index <= count:
        raise FacemathError(f"{text}: K counts from 1 to N={count}")
    return Shard(index, count)


def shard_of(key: str, count: int) -> int:
    """The 1-based shard that holds the input with this key."""
    return stable_hash("shard", key) % count + 1


def input_digest(names: list[str]) -> str:
    """Identifies the whole input list (names in order), so shards of different inputs are not merged."""
    return hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()  # names not UTF-8 too


def select(keys: list[str], shard: Shard | None) -> list[int]:
    """The positions of the inputs in this shard (all of them without one)."""
    if shard is None:
        return list(range(len(keys)))
    return [i for i, key in enumerate(keys) if shard_of(key, shard.count) == shard.index]


def record(shard: Shard, names: list[str]) -> dict:
    """What a shard writes in its latents file (see the module docstring)."""
    return {"index": shard.index, "count": shard.count, "inputs": len(names), "digest": input_digest(names)}


# --- merging ---------------------------------------------------------------------------------------------------


def latents_path(source: str | Path) -> Path:
    """A result folder means its latents.npz."""
    source = Path(source)
    return source / LATENTS_FILE if source.is_dir() else source


def _differences(a: dict, b: dict) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k} {json.dumps(a.get(k))} vs {json.dumps(b.get(k))}" for k in keys if a.get(k) != b.get(k)]


def check_shards(parts: list[tuple[Path, Latents]]) -> None:
    """Refuse shards that do not make one run: not a shard, another model or version, another configuration,
    another split or input list, a shard twice, an image in two shards, a shard or image missing. Each error is
    one line naming the file."""
    for path, latents in parts:
        if not latents.shard:
            raise BadFileError(f"{path}: not a shard (made without --shard K/N); nothing to merge it with")
        _check_shard_record(path, latents.shard)
    first_path, first = parts[0]
    base_config = {k: v for k, v in first.config.items() if k not in _PER_SHARD}
    for path, latents in parts[1:]:
        if (latents.family, latents.model, latents.source) != (first.family, first.model, first.source):
            raise BadFileError(
                f"{path}: {latents.source} latents of the {latents.model}, but {first_path} holds "
                f"{first.source} latents of the {first.model}"
            )
        if latents.models != first.models or latents.model_version != first.model_version:
            raise BadFileError(
                f"{path}: made with model versions {json.dumps(latents.models, sort_keys=True)}, but {first_path} "
                f"with {json.dumps(first.models, sort_keys=True)}"
            )
        if set(latents.losses) != set(first.losses) or latents.z.shape[1:] != first.z.shape[1:]:
            raise BadFileError(
                f"{path}: holds loss terms {sorted(latents.losses)} and z of {latents.z.shape[1]} dimensions, but "
                f"{first_path} {sorted(first.losses)} and {first.z.shape[1]}"
            )
        config = {k: v for k, v in latents.config.items() if k not in _PER_SHARD}
        if config != base_config:
            raise BadFileError(
                f"{path}: projection config differs from {first_path}'s: {'; '.join(_differences(config, base_config))}"
            )
        same_split = (latents.shard.get("count"), latents.shard.get("inputs"), latents.shard.get("digest"))
        if same_split != (first.shard.get("count"), first.shard.get("inputs"), first.shard.get("digest")):
            raise BadFileError(
                f"{path}: shard {latents.shard.get('index')}/{latents.shard.get('count')} of "
                f"{latents.shard.get('inputs')} inputs is not from the same split as {first_path} "
                f"(shard {first.shard.get('index')}/{first.shard.get('count')} of {first.shard.get('inputs')} "
                f"inputs): other --shard N or other input files"
            )
    count, total = int(first.shard["count"]), int(first.shard["inputs"])
    seen: dict[int, Path] = {}
    for path, latents in parts:
        index = int(latents.shard["index"])
        if index in seen:
            raise BadFileError(f"{path}: shard {index}/{count} is given twice (also {seen[index]})")
        seen[index] = path
    missing = [k for k in range(1, count + 1) if k not in seen]
    if missing:
        raise FacemathError(
            f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {count} "
            f"(given: {', '.join(f'{k} ({seen[k]})' for k in sorted(seen))})"
        )
    owner: dict[int, tuple[Path, str]] = {}
    for path, latents in parts:
        for position, name in zip(latents.input_index.tolist(), latents.names, strict=True):
            if not 0 <= position < total:
                raise BadFileError(f"{path}: {name} is input {position}, but the run had {total} inputs")
            if position in owner:
                raise BadFileError(f"{path}: {name} is also in {owner[position][0]} (the shards overlap)")
            owner[position] = (path, name)
    if len(owner) != total:
        raise FacemathError(
            f"the shards hold {len(owner)} of the run's {total} inputs; {total - len(owner)} are missing "
            f"(a shard whose images all failed writes nothing: rerun it)"
        )


def _check_shard_record(path: Path, shard: dict) -> None:
    """A shard record as `record` writes it: whole numbers 1 <= index <= count <= MAX_SHARDS, inputs >= 0."""
    values = {key: shard.get(key) for key in ("index", "count", "inputs")}
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadFileError(f"{path}: shard {key} is {json.dumps(value)}, not a whole number")
    if not 1 <= values["index"] <= values["count"] <= MAX_SHARDS or values["inputs"] < 0:
        raise BadFileError(
            f"{path}: shard {values['index']}/{values['count']} of {values['inputs']} inputs is not a shard K/N with "
            f"1 <= K <= N <= {MAX_SHARDS:,}"
        )


def merge(parts: list[tuple[Path, Latents]]) -> Latents:
    """One Latents equal to what an unsharded run writes: faces in input order, the shard fields dropped, the
    outlier flags judged again over all faces (as one run judges them)."""

    check_shards(parts)
    first = parts[0][1]
    order = np.argsort(np.concatenate([latents.input_index for _, latents in parts]), kind="stable")

    def joined(values: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(values)[order]

    names = [name for _, latents in parts for name in latents.names]
    inputs = [path for _, latents in parts for path in latents.config.get("inputs", [])]
    backends = list(dict.fromkeys(str(latents.config.get("backend", "")) for _, latents in parts))
    has_psnr = all(latents.psnr is not None for _, latents in parts)
    merged = Latents(
        names=[names[i] for i in order],
        z=joined([latents.z for _, latents in parts]),
        family=first.family,
        model=first.model,
        model_version=first.model_version,
        source=first.source,
        losses={k: joined([latents.losses[k] for _, latents in parts]) for k in first.losses},
        failed=joined([_bools(latents.failed, len(latents.names)) for _, latents in parts]),
        psnr=joined([latents.psnr for _, latents in parts]) if has_psnr else None,
        config={
            **first.config,
            **({"inputs": [inputs[i] for i in order]} if len(inputs) == len(names) else {}),
            **({"backend": "; ".join(backends)} if "backend" in first.config else {}),
            # The shards' own times added up: the worker-seconds the whole run took, wherever its shards ran.
            **(
                {"projection_seconds": round(sum(latents.config["projection_seconds"] for _, latents in parts), 3)}
                if all("projection_seconds" in latents.config for _, latents in parts)
                else {}
            ),
        },
        models=dict(first.models),
    )
    if merged.psnr is not None and "total" in merged.losses:
        merged.flagged = flag_outliers(merged.losses["total"], merged.psnr, merged.failed)
    return merged


def _bools(values, n: int) -> np.ndarray:
    return np.zeros(n, bool) if values is None else np.asarray(values, bool)


def load_shards(sources: list[str | Path]) -> list[tuple[Path, Latents]]:
    """Each source (a result folder or a latents file) with its latents, in the order given."""
    if not sources:
        raise FacemathError("give the shards' result folders or latents files")
    parts = []
    for source in sources:
        path = latents_path(source)
        if Path(source).is_dir() and not path.exists():
            raise FacemathError(f"{source}: no {LATENTS_FILE} in this folder (not a projection result)")
        parts.append((path, load_latents(path)))
    seen: dict[Path, str] = {}
    for (path, _), source in zip(parts, sources, strict=True):
        resolved = path.resolve()
        if resolved in seen:
            raise FacemathError(f"{source}: given twice (also as {seen[resolved]})")
        seen[resolved] = str(source)
    return parts


def write_merged(parts: list[tuple[Path, Latents]], merged: Latents, folder: Path) -> list[str]:
    """Fill a result folder: latents.npz, and the per-face image folders every shard has (copied). Returns what
    it wrote, for the summary."""

    save_latents(folder / LATENTS_FILE, merged)
    written = [LATENTS_FILE]
    for sub in IMAGE_FOLDERS:
        shard_dirs = [path.parent / sub for path, latents in parts]
        if not all(d.is_dir() or not latents.names for d, (_, latents) in zip(shard_dirs, parts, strict=True)):
            continue
        if not any(d.is_dir() for d in shard_dirs):
            continue
        (folder / sub).mkdir()
        for d, (_, latents) in zip(shard_dirs, parts, strict=True):
            for name in latents.names:
                image = d / f"{Path(name).stem}.png"
                if image.exists():
                    shutil.copy2(image, folder / sub / image.name)
        written.append(f"{sub}/")
    return written
