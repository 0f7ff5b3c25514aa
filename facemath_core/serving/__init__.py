"""Where exported models run: the embedded and TF Serving backends, TF Serving's config files, the stand-in server
that speaks TF Serving's gRPC API, and deployment of versions and labels to a model base path and a fleet.

Imports `models`, `data`, `host` and `base`.
"""

import os

# gRPC's C core writes its own log lines to stderr (a failed TLS handshake: one to four lines per attempt) and reads
# GRPC_VERBOSITY once, when `grpc` is first imported (which happens only below this package). facemath reports every
# gRPC failure itself as one line, so the core stays quiet unless the user asks for its logs.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
