"""Built-in backends: the embedded SavedModels (no `--server`) and TF Serving (any other `--server` target).

Both answer last (`trylast`), so a plugin can claim a target first, e.g. a `kserve://` URL scheme.
"""

from __future__ import annotations

from facemath_core import hookimpl
from facemath_core.serving.backends.embedded import EmbeddedBackend
from facemath_core.serving.backends.tfserving import TFServingBackend

EMBEDDED_OPTIONS = ("prefix", "versions")


@hookimpl(trylast=True)
def facemath_open_backend(models, server, options):
    if server:
        return TFServingBackend(server, **options)

    return EmbeddedBackend(models, **{k: v for k, v in options.items() if k in EMBEDDED_OPTIONS})
