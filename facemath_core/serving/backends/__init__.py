"""Backends run the exported signatures: in-process (`embedded`, the default) or on a TF Serving server.

Everything above them (projection, encoding, arithmetic, reports) talks to the `Backend` interface only. Which
backend a command gets is decided by the `facemath_open_backend` plugin hook; the built-in implementations are in
`facemath_plugins.backends`.
"""

from facemath_core.base.errors import FacemathError
from facemath_core.host.backend import Backend
from facemath_core.host.manager import call_hook, current_manager
from facemath_core.serving.backends.embedded import EmbeddedBackend

__all__ = ["Backend", "EmbeddedBackend", "open_backend"]


def open_backend(models: str = "exported_models", server: str | None = None, **options) -> Backend:
    """The backend the plugins choose for `server` (None: the embedded backend over the `models` base path)."""

    backend = call_hook(current_manager(), "facemath_open_backend", models=str(models), server=server, options=options)
    if backend is None:
        raise FacemathError(
            f"--server {server}: no backend plugin accepts this target "
            f"(built in: HOST:PORT, dns:///NAME:PORT or a comma-separated list; see `facemath plugins`)"
        )
    return backend
