"""Atomic outputs: a result appears whole or not at all, and a path that cannot be written fails before any work.

`atomic_file` and `atomic_dir` are the one way facemath publishes a result. Both build it under a hidden temporary
name beside the destination (`.NAME.PID@HOST.XXXX.part`) and rename it into place in one step; on any failure (an
exception, Ctrl-C) the temporary and any folder they had to create are removed, and an existing result is left as
it was; a temporary whose process died (kill -9) is removed by the next `atomic_dir` into its folder. Replacing
(`--overwrite`) moves the old result aside, puts the new one in its place, then deletes the old; if the second
rename fails the old result is put back, and an output that is, holds or lies in an input is refused
(`check_apart`). Modes are what a plain write gives under the umask.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
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


def check_apart(path: str | os.PathLike, reads: Iterable[str | os.PathLike], option: str = "--out") -> Path:
    """Refuse an output that would replace or sit inside what the command reads: the output is an input, holds one
    (replacing it with --overwrite would delete the input: `project faces --out faces`, `latents merge out/s1
    out/s2 --out out`), or lies inside an input folder (`data pack faces --out faces/shards`: the command would
    write into the folder it is reading). Links are followed as the command follows them: the inputs to what
    they name; the output up to its last part (replacing a link replaces the link, never what it points to)."""
    path = Path(path)
    target = Path(os.path.realpath(path.parent)) / path.name
    for source in reads:
        read = Path(os.path.realpath(source))
        if read == target or read.is_relative_to(target):
            what = "is" if read == target else "holds"
            raise OutputError(
                f"{option} {path}: {what} the input {source}; replacing it would delete what this command reads "
                f"(name another {option})"
            )
        if target.is_relative_to(read):
            raise OutputError(
                f"{option} {path}: lies inside the input folder {source}; write it outside the folder this "
                f"command reads"
            )
    return path


def check_new_dir(
    path: str | os.PathLike, overwrite: bool, option: str = "--out", reads: Iterable[str | os.PathLike] = ()
) -> Path:
    """Refuse to write into an existing non-empty folder unless the user said --overwrite, and refuse any folder
    that could not be written (see `check_writable`) or that is, holds or lies in an input (`check_apart`: the
    files and folders in `reads`)."""
    path = check_apart(path, reads, option)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: exists and is not a folder")
    try:
        nonempty = path.exists() and any(path.iterdir())
    except OSError as exc:
        raise OutputError(f"{option} {describe_os_error(exc, path)}") from None
    if nonempty and not overwrite:
        raise OutputError(f"{option} {path}: folder exists and is not empty (use --overwrite to replace it)")
    return check_writable(path, option)


def check_new_file(
    path: str | os.PathLike, option: str = "--out", overwrite: bool = True, reads: Iterable[str | os.PathLike] = ()
) -> Path:
    """Refuse a file output that could not be written, before any work; an existing file is replaced only when
    `overwrite` (the CLI's --overwrite: the same rule as `check_new_dir` for folders), and never when it is or lies
    in an input (`reads`, see `check_apart`)."""
    path = check_apart(path, reads, option)
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


# --- temporaries that outlive their process ---------------------------------------------------------------------

# A temporary is `.NAME.PID@HOST.XXXXXXXX.part`: the process that owns it, so that a later run can tell a stale one
# (its process is gone: killed with kill -9, or a power cut) from one a live process is still writing.
_PART = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.[A-Za-z0-9_]+\.part$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0])[:32]


def _part_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}@{_host()}."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def clean_stale_parts(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in `folder` whose process has died (see `_PART`); returns what was removed.

    Only this machine's temporaries are judged (a folder on shared storage may hold another machine's live ones),
    never this process's own, and never a name in another format: what cannot be proved stale is left."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PART.match(entry.name)
        if not match or match["host"] != _host():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _process_alive(pid):
            continue
        remove_path(entry.path)
        removed.append(Path(entry.path))
    return removed


# --- a full disk ------------------------------------------------------------------------------------------------


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the file system holding `path` (or where it would be created)."""
    probe = Path(os.path.realpath(_nearest_existing(Path(path).absolute())))
    while not os.path.ismount(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def is_disk_full(exc: BaseException) -> bool:
    """An OSError ENOSPC/EDQUOT, or TensorFlow's ResourceExhaustedError from its file writers (recognised by name,
    so that this module needs no TensorFlow), or any error whose message is the C library's ENOSPC text."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return (
        type(exc).__name__ == "ResourceExhaustedError" and ("space" in text.lower() or "write" in text.lower())
    ) or os.strerror(errno.ENOSPC) in text


@contextlib.contextmanager
def disk_space(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Around publishing `path`: a full disk becomes one line, `no space left on MOUNT while writing WHAT; nothing
    was published` (put it outside `atomic_dir`/`atomic_file`, which have removed the temporary by then)."""
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        raise OutputError(f"no space left on {mount_point(path)} while writing {what}; nothing was published") from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", permissions: int | None = None) -> Iterator:
    """Write to a temporary file beside `path`, then rename it into place; on error nothing is left behind.
    `permissions`: the file's mode instead of the umask's (0o600 for a file holding a private key: it is never
    readable by others, not even for a moment)."""
    path = Path(path)
    created = _make_parents(path.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_part_prefix(path), suffix=".part")
    except OSError as exc:
        _remove_created(created)
        raise OutputError(describe_os_error(exc, path)) from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, _permissions(directory=False) if permissions is None else permissions)
        publish(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_created(created)
        if isinstance(exc, OSError) and exc.filename in (tmp, str(path), path):
            raise OutputError(describe_os_error(exc, path)) from exc
        raise


LOCK_NAME = ".facemath.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, option: str = "--to", wait: float = 600.0) -> Iterator[Path]:
    """Hold an OS file lock (fcntl.flock) on `folder` while reading and publishing into it, so that two facemath
    processes writing one shared folder (`deploy`, `export` into one model base path) run one after the other
    instead of one losing the other's work (both read models.config, both write it: the first writer's entries
    are lost).

    The lock is `folder/.facemath.lock`, taken exclusively; a second process waits up to `wait` seconds and then
    refuses with one line naming the holder. The file is removed on release, while still locked; a waiter that
    then wins the lock on the removed file sees that its path is gone (or is a newer file) and tries again, so
    two processes can never both believe they hold it. The kernel drops a flock when its process dies (kill -9
    included), so no stale lock ever blocks a later run. `folder` is created if missing, and removed again if
    the body fails while it is still empty."""
    import fcntl  # POSIX only: imported where it is used, so the rest of this module imports everywhere

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder}: exists and is not a folder")
    created = _make_parents(folder, folder)
    path = folder / LOCK_NAME
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, _permissions(directory=False))
            except OSError as exc:
                raise OutputError(f"{option} {describe_os_error(exc, folder)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    waited = f" and has not finished after {wait:.0f} s" if wait > 0 else ""
                    raise OutputError(
                        f"{option} {folder}: another facemath process ({_lock_holder(path)}) is writing this folder"
                        f"{waited}; try again when it has finished"
                    ) from None
                time.sleep(0.05)
                continue
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder before us removed this file on release: lock the one at the path now
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        try:
            yield folder
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)  # releases the lock
    except BaseException:
        _remove_created(created)
        raise


def _lock_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "pid unknown"
    except OSError:
        return "pid unknown"


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside `path`, then swap it into place in one rename.

    An existing folder (or file) at `path` is replaced only once the new one is complete.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise OutputError(f"{path}: name a new folder, not '.' or '..'")
    created = _make_parents(path.parent, path)
    clean_stale_parts(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_part_prefix(path), suffix=".part"))
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
