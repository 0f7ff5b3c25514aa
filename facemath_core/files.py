"""Atomic outputs: a result appears whole or not at all."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from facemath_core.errors import FacemathError


def _permissions(directory: bool) -> int:
    """What open() or mkdir() would give under the user's umask; mkstemp and mkdtemp give 0600 and 0700."""
    umask = os.umask(0o022)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Write to a temporary file beside `path`, then rename it into place; on error nothing is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, _permissions(directory=False))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def to_json(value) -> str:
    """Strict JSON (what other languages' parsers accept): NaN and infinities become null, numpy numbers plain."""

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if hasattr(v, "item") and not isinstance(v, str):  # numpy scalar
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False) + "\n"


def check_new_dir(path: str | os.PathLike, overwrite: bool, option: str = "--out") -> Path:
    """Refuse to write into an existing non-empty folder unless the user said --overwrite."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FacemathError(f"{option} {path}: exists and is not a folder")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FacemathError(f"{option} {path}: folder exists and is not empty (use --overwrite to replace it)")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside `path`, then swap it into place in one rename.

    An existing folder at `path` is replaced only once the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    try:
        yield tmp
        os.chmod(tmp, _permissions(directory=True))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
