"""Deprecated path: the error types are `facemath_core.FacemathError` and `facemath_core.PluginError` (they live
in `facemath_core.base.errors`). Kept so that plugins written for facemath 0.1 keep working; it will be removed in
facemath 0.3."""

import warnings

from facemath_core.base.errors import *  # noqa: F403
from facemath_core.base.errors import FacemathError, PluginError  # noqa: F401

warnings.warn(
    "facemath_core.errors is deprecated: import FacemathError and PluginError from facemath_core",
    DeprecationWarning,
    stacklevel=2,
)
