"""Where the models come from: one resolution rule for every command, and the version a latents file needs.

The rule: `--models` if given, else `$FACEMATH_MODELS`, else `./exported_models` if it exists (the user's own
exports), else the default models installed with the package. `--server` replaces all of it with TF Serving.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError

ENV_VAR = "FACEMATH_MODELS"
LOCAL_FOLDER = "exported_models"
# The shipped models travel as package data of the wheel, importable as this (data-only) package.
PACKAGE = "facemath_models"


def installed_models() -> Path | None:
    """The default models shipped with the package: its `facemath_models` data, or the source checkout's folder."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location, S.GENERATOR).is_dir():
            return Path(location)
    checkout = Path(__file__).resolve().parents[2] / LOCAL_FOLDER  # an editable install or a source tree
    return checkout if checkout.is_dir() else None


@dataclass(frozen=True)
class ResolvedModels:
    path: Path
    origin: str  # which step of the rule chose it, said by `facemath info`


def resolve_models(models: str | Path | None) -> ResolvedModels:
    """Apply the resolution rule; a named folder that does not exist is an error naming where it came from."""
    if models is not None:
        path, origin = Path(models), "--models"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]), ENV_VAR
    elif Path(LOCAL_FOLDER).is_dir():
        path, origin = Path(LOCAL_FOLDER), f"./{LOCAL_FOLDER} in the current folder"
    else:
        installed = installed_models()
        if installed is None:
            raise FacemathError(
                f"no models: give --models DIR or --server HOST:PORT, or set {ENV_VAR} "
                f"(this installation has no default models)"
            )
        path, origin = installed, "the default models installed with facemath"
    if not path.is_dir():
        given = f"{ENV_VAR}={path}" if origin == ENV_VAR else f"--models {path}"
        raise FacemathError(f"{given}: no such folder")
    return ResolvedModels(path, origin)


def use_recorded_version(backend, model: str, recorded: int, origin: str, explicit: bool = False) -> str | None:
    """Decode latents with the model version that made them. Returns a note for stderr when that version is not
    the newest one the backend has (or when an explicit --model-version overrides it); fails when it is gone.

    `recorded` 0 means a file from before versions were recorded: the backend's default is used."""
    if not recorded:
        return None
    name = S.model_name(model, getattr(backend, "prefix", ""))
    available = backend.available_versions(model)
    if explicit:
        chosen = backend.version(model)
        if chosen != recorded:
            return f"{origin}: made with {name} version {recorded}; decoding with version {chosen} as asked"
        return None
    if available and recorded not in available:
        have = ", ".join(str(v) for v in available)
        raise FacemathError(
            f"{origin}: made with {name} version {recorded}, which {backend.describe()} does not have "
            f"(it has {have}); decode with the models that made these latents"
        )
    backend.use_version(model, recorded)
    if available and recorded != available[-1]:
        return f"{origin}: decoding with {name} version {recorded}, the one it was made with (newest: {available[-1]})"
    return None
