"""Latent spaces: one or more latents files of one model joined into one, with the attribute labels of their images.

`open_space` is what every arithmetic command starts from: it merges the files (refusing to mix models or repeat
names), finds the attribute file (given, or the one next to the images) and keeps why it could not label the
latents, so that only the expressions that need labels fail.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError
from facemath_core.data.folders import ATTR_FILE, read_attribute_file
from facemath_core.latent.latents import Latents, flag_array, load_latents


@dataclass
class LatentSpace:
    """Latents (N, D) with their names, and optionally attribute labels (N, K) as booleans."""

    latents: Latents
    attribute_names: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # (N, K) bool
    label_source: str = ""
    labels_unusable: str = ""  # why an attribute file found next to the images could not label these latents

    @property
    def z(self) -> np.ndarray:
        return self.latents.z

    @functools.cached_property
    def stems(self) -> list[str]:
        return [Path(n).stem for n in self.latents.names]

    def require_labels(self, what: str) -> np.ndarray:
        if self.labels is None and self.labels_unusable:
            raise FacemathError(f"{what} needs attribute labels: {self.labels_unusable}")
        if self.labels is None:
            raise FacemathError(
                f"{what} needs attribute labels, and no {ATTR_FILE} was found next to the latents' images; "
                f"give one with --attributes FILE_OR_FOLDER"
            )
        return self.labels


def merge_latents(files: Sequence[str | Path]) -> Latents:
    """Several latents files as one; all must come from the same model with the same z size."""
    if not files:
        raise FacemathError("--latents: give at least one latents.npz")
    parts = [(str(f), load_latents(f)) for f in files]
    first_path, first = parts[0]
    names, seen = [], {}
    for path, part in parts:
        if (part.family, part.model, part.z.shape[1]) != (first.family, first.model, first.z.shape[1]):
            raise FacemathError(
                f"{path}: latents of the {part.family} model {part.model} ({part.z.shape[1]} dims) cannot be mixed "
                f"with {first_path} ({first.family} model {first.model}, {first.z.shape[1]} dims)"
            )
        for name in part.names:
            if name in seen:
                raise FacemathError(f"{path}: the name {name!r} is also in {seen[name]}; names must be unique")
            seen[name] = path
            names.append(name)
    if len(parts) == 1:
        return first
    inputs = [p for _, part in parts for p in part.config.get("inputs", [])]
    return Latents(
        names=names,
        z=np.concatenate([part.z for _, part in parts]),
        family=first.family,
        model=first.model,
        model_version=first.model_version,
        source="+".join(sorted({part.source for _, part in parts})),
        flagged=np.concatenate([flag_array(part) for _, part in parts]),
        config={"inputs": inputs, "merged_from": [p for p, _ in parts]},
        models=first.models,
    )


def find_attribute_file(latents: Latents, given: str | Path | None) -> Path | None:
    """The attribute file: --attributes (a file or a folder holding one), else the one next to the images."""
    if given is not None:
        path = Path(given)
        path = path / ATTR_FILE if path.is_dir() else path
        if not path.is_file():
            raise FacemathError(f"--attributes {given}: no such attribute file")
        return path
    folders = {Path(p).parent for p in latents.config.get("inputs", [])}
    candidates = {f / ATTR_FILE for f in folders} | {f.parent / ATTR_FILE for f in folders}
    found = sorted(c for c in candidates if c.is_file())
    if len(found) > 1:
        raise FacemathError(
            f"the latents' images come from folders with different attribute files ({', '.join(map(str, found))}); "
            "choose one with --attributes FILE_OR_FOLDER"
        )
    return found[0] if found else None


def open_space(files: Sequence[str | Path], attributes: str | Path | None = None) -> LatentSpace:
    latents = merge_latents(files)
    path = find_attribute_file(latents, attributes)
    if path is None:
        return LatentSpace(latents)
    rows, names, values = read_attribute_file(path)
    by_name = dict(zip(rows, values, strict=True))
    missing = [n for n in latents.names if n not in by_name]
    if missing:
        problem = f"{path}: has no labels for {len(missing)} of the {len(latents.names)} latents, e.g. {missing[0]!r}"
        if attributes is not None:
            raise FacemathError(problem)
        # Found by itself, not asked for: expressions without groups or attr() still work; the rest say why not.
        return LatentSpace(latents, labels_unusable=problem)
    labels = np.stack([by_name[n] for n in latents.names]) > 0
    return LatentSpace(latents, list(names), labels, str(path))


def without_flagged(space: LatentSpace) -> tuple[LatentSpace, list[str]]:
    """The space without its faces flagged as failed projections (facemath_core.projection.flags), and their names."""
    flagged = flag_array(space.latents)
    if not flagged.any():
        return space, []
    kept = np.flatnonzero(~flagged)
    latents = space.latents
    smaller = Latents(
        names=[latents.names[i] for i in kept],
        z=latents.z[kept],
        family=latents.family,
        model=latents.model,
        model_version=latents.model_version,
        source=latents.source,
        losses={k: v[kept] for k, v in latents.losses.items()},
        failed=None if latents.failed is None else latents.failed[kept],
        flagged=np.zeros(len(kept), bool),
        psnr=None if latents.psnr is None else latents.psnr[kept],
        config=latents.config,
        models=latents.models,
    )
    labels = None if space.labels is None else space.labels[kept]
    skipped = [latents.names[i] for i in np.flatnonzero(flagged)]
    return LatentSpace(smaller, space.attribute_names, labels, space.label_source, space.labels_unusable), skipped
