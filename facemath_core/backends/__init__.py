"""Backends run the exported signatures: in-process (`embedded`, the default) or on a TF Serving server.

Everything above them (projection, encoding, arithmetic, reports) talks to the `Backend` interface only.
"""

from facemath_core.backends.base import Backend
from facemath_core.backends.embedded import EmbeddedBackend

__all__ = ["Backend", "EmbeddedBackend", "open_backend"]


def open_backend(models: str = "exported_models", server: str | None = None, **options) -> Backend:
    """The embedded backend over a model base path, or (with `server`) the TF Serving backend."""
    if server:
        from facemath_core.backends.tfserving import TFServingBackend

        return TFServingBackend(server, **options)
    return EmbeddedBackend(models, **{k: v for k, v in options.items() if k in ("prefix", "versions")})
