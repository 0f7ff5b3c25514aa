"""`python -m facemath`: the distribution's name as a module, for people who reach for it.

The library is `facemath_core`; this package only forwards to its command line.
"""

from facemath_core import __version__

__all__ = ["__version__"]
