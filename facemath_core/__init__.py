"""facemath: math on faces with deep generative models.

The package root is the plugin API, one import for a plugin author (as `datasette` and `pytest` offer theirs):
`hookimpl`, the component types, `Param` (a declared parameter), the `Backend` interface, the error types and
`read_image` (an image read as every command reads one); `facemath_core.testing` is a plugin's test kit. The
library lives in sub-packages named by layer (docs/architecture.md); nothing inside them imports this root.
"""

from facemath_core.base.errors import FacemathError, PluginError
from facemath_core.base.version import __version__
from facemath_core.data.images import read_image
from facemath_core.host.backend import Backend
from facemath_core.host.components import (
    Blender,
    Component,
    Constraint,
    DetectedFace,
    FaceDetector,
    Initializer,
    LossTerm,
    Mask,
    Operator,
    Optimizer,
    Sampler,
)
from facemath_core.host.hookspecs import hookimpl
from facemath_core.host.schema import Param

__all__ = [
    "Backend",
    "Blender",
    "Component",
    "Constraint",
    "DetectedFace",
    "FaceDetector",
    "FacemathError",
    "Initializer",
    "LossTerm",
    "Mask",
    "Operator",
    "Optimizer",
    "Param",
    "PluginError",
    "Sampler",
    "__version__",
    "hookimpl",
    "read_image",
]
