"""Deprecated path: `Backend` is `facemath_core.Backend` (it lives in `facemath_core.host.backend`) and
`open_backend` is `facemath_core.serving.backends.open_backend`. Kept so that plugins written for facemath 0.1 keep
working; it will be removed in facemath 0.3."""

import warnings

from facemath_core.host.backend import Backend
from facemath_core.serving.backends import EmbeddedBackend, open_backend

__all__ = ["Backend", "EmbeddedBackend", "open_backend"]

warnings.warn(
    "facemath_core.backends is deprecated: import Backend from facemath_core", DeprecationWarning, stacklevel=2
)
