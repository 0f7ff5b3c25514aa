"""Atomic outputs: a result appears whole or not at all, and a path that cannot be written fails before any work.

`atomic_file` and `atomic_dir` are the one way facemath publishes a result. Both build it under a hidden temporary
name beside the destination (`.NAME.XXXX.part`) and rename it into place in one step; on any failure (an
exception, Ctrl-C) the temporary and any folder they had to create are removed, and an existing result is left as
it was. Replacing (`--overwrite`) moves the old result aside, puts the new one in its place, then deletes the old;
if the second rename fails the old result is put back. Modes are what a plain write gives under the umask.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from facemath_core.base.errors import OutputError, describe_os_error


def _permissions(directory: bool) -> int:
    """What open() or mkdir() would give under the user's umask; mkstemp and mkdtemp give 0600 and 0700."""
    umask = os.umask(0o022)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


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


# --- checks before any work -------------------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse an output path that could not be created, before any work: one under a file, in a folder that is
    not writable, the current folder or one of its parents. Probes with a real temporary file, so it is right for
    root (who may write into read-only folders) and for read-only file systems alike."""
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(
            f"{option} {path}: is the current folder or holds it; name a new folder (replacing it would "
            f"delete the folder you are working in)"
        )
    if path.is_symlink() and not path.exists():
        raise OutputError(f"{option} {path}: is a broken symbolic link")
    # The folder the result is renamed into must exist or be creatable, and accept a new entry.
    parent = _nearest_existing(resolved.parent)
    if not parent.is_dir():
        raise OutputError(f"{option} {path}: {parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".facemath-probe.", suffix=".part")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{option} {path}: {describe_os_error(exc, parent)}") from None
    return path


def check_new_dir(path: str | os.PathLike, overwrite: bool, option: str = "--out") -> Path:
    """Refuse to write into an existing non-empty folder unless the user said --overwrite, and refuse any folder
    that could not be written (see `check_writable`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: exists and is not a folder")
    try:
        nonempty = path.exists() and any(path.iterdir())
    except OSError as exc:
        raise OutputError(f"{option} {describe_os_error(exc, path)}") from None
    if nonempty and not overwrite:
        raise OutputError(f"{option} {path}: folder exists and is not empty (use --overwrite to replace it)")
    return check_writable(path, option)


def check_new_file(path: str | os.PathLike, option: str = "--out", overwrite: bool = True) -> Path:
    """Refuse a file output that could not be written, before any work; an existing file is replaced only when
    `overwrite` (the CLI's --overwrite: the same rule as `check_new_dir` for folders)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; name a file")
    if path.exists() and not overwrite:
        raise OutputError(f"{option} {path}: file exists (use --overwrite to replace it)")
    return check_writable(path, option)


# --- publishing -------------------------------------------------------------------------------------------------


def _make_parents(folder: Path, path: Path) -> list[Path]:
    """Create `folder` and its missing parents; return the ones created (deepest last), to undo on failure."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_created(missing)
        raise OutputError(f"{path}: cannot create {describe_os_error(exc, exc.filename or folder)}") from None
    return list(reversed(missing))


def _remove_created(created: list[Path]) -> None:
    for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if still empty: never removes anything else


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file, link or folder tree (a link itself, never what it points to)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished `tmp` (file or folder) to `path`, replacing whatever is there (file or folder).

    The old result is moved aside first and deleted only once the new one is in place; if that second rename
    fails, the old result is put back, so `path` always holds a complete result."""
    tmp, path = Path(tmp), Path(path)
    folder_involved = tmp.is_dir() or (path.is_dir() and not path.is_symlink())
    if folder_involved and (path.exists() or path.is_symlink()):
        # rename() cannot put a folder over a non-empty folder, nor a folder over a file, or the reverse.
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        remove_path(old)
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        remove_path(old)
    else:
        os.replace(tmp, path)  # a file over a file (or nothing) is replaced atomically by the rename itself


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Write to a temporary file beside `path`, then rename it into place; on error nothing is left behind."""
    path = Path(path)
    created = _make_parents(path.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        _remove_created(created)
        raise OutputError(describe_os_error(exc, path)) from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, _permissions(directory=False))
        publish(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_created(created)
        if isinstance(exc, OSError) and exc.filename in (tmp, str(path), path):
            raise OutputError(describe_os_error(exc, path)) from exc
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside `path`, then swap it into place in one rename.

    An existing folder (or file) at `path` is replaced only once the new one is complete.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise OutputError(f"{path}: name a new folder, not '.' or '..'")
    created = _make_parents(path.parent, path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    except OSError as exc:
        _remove_created(created)
        raise OutputError(describe_os_error(exc, path)) from None
    try:
        yield tmp
        os.chmod(tmp, _permissions(directory=True))
        publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created)
        raise
