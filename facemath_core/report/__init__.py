"""The GAN-vs-VAE comparison: running every method on held-out faces, scoring them, and writing the report with
its figures; with `--lambdas`, the lambda knob (`knob`).

Imports `projection`, `latent` and everything below them.
"""
