"""Built-in backends: the embedded SavedModels (no `--server`) and TF Serving (a `--server` target of gRPC's:
HOST:PORT, dns:///NAME:PORT, a comma-separated list).

Both answer last (`trylast`), so a plugin can claim a target first, e.g. a `kserve://` URL scheme; a target with a
scheme of no plugin's is left unanswered (no backend accepts it) rather than dialled as a gRPC address.
"""

from __future__ import annotations

from facemath_core import Backend, hookimpl
from facemath_core.serving.backends.embedded import EmbeddedBackend
from facemath_core.serving.backends.tfserving import TFServingBackend

EMBEDDED_OPTIONS = ("prefix", "versions")


@hookimpl(trylast=True)
def facemath_open_backend(models, server, options):
    if server:
        if Backend.plugin_scheme(server):
            return None
        return TFServingBackend(server, **options)

    return EmbeddedBackend(models, **{k: v for k, v in options.items() if k in EMBEDDED_OPTIONS})
