"""Deprecated path: the component types are `facemath_core.LossTerm`, `facemath_core.Optimizer`, ... (they live in
`facemath_core.host.components`). Kept so that plugins written for facemath 0.1 keep working; it will be removed
in facemath 0.3."""

import warnings

from facemath_core.host.components import *  # noqa: F403

warnings.warn(
    "facemath_core.components is deprecated: import the component types from facemath_core",
    DeprecationWarning,
    stacklevel=2,
)
