"""Where exported models run: the embedded and TF Serving backends, TF Serving's config files, the stand-in server
that speaks TF Serving's gRPC API, and deployment of versions and labels to a model base path and a fleet.

Imports `models`, `data`, `host` and `base`.
"""
