"""The error types the library raises for anything a user can fix, and the exit codes the CLI gives them.

Exit codes (docs/errors.md): 0 success, 1 an error in the input or environment (a FacemathError), 2 a malformed
command line, 70 an unexpected exception (a bug: "internal error"), 130 interrupted with a checkpoint kept.
"""

from __future__ import annotations

import errno
import os

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # BSD sysexits EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class FacemathError(Exception):
    """A problem with the user's input or environment, with a message that says what to change.

    The CLI prints the message as one red line and exits `exit_code`; it never shows a traceback for these.
    """

    exit_code = EXIT_ERROR


class BadFileError(FacemathError):
    """An input file that exists but cannot be used: corrupt, truncated, the wrong format or the wrong contents."""


class OutputError(FacemathError):
    """An output path that cannot be written: a read-only folder, a path under a file, the current folder."""


class Interrupted(FacemathError):
    """Ctrl-C or SIGTERM during long work; the message says what was kept and how to continue."""

    exit_code = EXIT_INTERRUPTED


_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "name too long",
    errno.ELOOP: "too many levels of symbolic links",
}


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an OSError: the path it concerns and a plain reason ('out/x.png: permission denied')."""
    where = path if path is not None else exc.filename
    reason = _REASONS.get(exc.errno) or (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{where}: {reason}" if where is not None else reason


class PluginError(FacemathError):
    """Plugin code failed or broke its contract; the message names the component and the plugin providing it."""
