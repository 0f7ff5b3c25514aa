"""facemath: math on faces with deep generative models."""

import pluggy

__version__ = "0.1.0"

# Plugin authors import this one name: `from facemath_core import hookimpl`.
hookimpl = pluggy.HookimplMarker("facemath")

__all__ = ["__version__", "hookimpl"]
