"""Backends run the exported signatures: in-process (`embedded`, the default) or on a TF Serving server.

Everything above them (projection, encoding, arithmetic, reports) talks to the `Backend` interface only. Which
backend a command gets is decided by the `facemath_open_backend` plugin hook; the built-in implementations are in
`facemath_plugins.backends`.
"""

from pathlib import Path

from facemath_core.base.errors import FacemathError
from facemath_core.host.backend import Backend
from facemath_core.host.manager import PluginManager, call_hook, current_manager
from facemath_core.models.source import resolve_models
from facemath_core.serving.backends.embedded import EmbeddedBackend

__all__ = ["Backend", "EmbeddedBackend", "open_backend"]


def open_backend(
    models: str | Path | None = None, server: str | None = None, manager: PluginManager | None = None, **options
) -> Backend:
    """The backend the plugins choose for `server` (None: the embedded backend over the model folder).

    The hook gets the model folder resolved as every command resolves it (`--models`, $FACEMATH_MODELS,
    ./exported_models, the installed models; None with a `--server` when there is none) and the options, the
    model version among them. `manager`: the plugin manager (default: the one of this command line)."""

    if models is None:
        try:
            models = resolve_models(None).path
        except FacemathError:
            if not server:
                raise
    folder = None if models is None else str(models)
    manager = current_manager() if manager is None else manager
    backend = call_hook(manager, "facemath_open_backend", models=folder, server=server, options=options)
    if backend is None:
        scheme = Backend.plugin_scheme(server)
        which = f"no backend plugin claims {scheme}://" if scheme else "no backend plugin accepts this target"
        raise FacemathError(
            f"--server {server}: {which} (built in: HOST:PORT, dns:///NAME:PORT or a comma-separated list; "
            f"see `facemath plugins --kind backend`)"
        )
    return backend
