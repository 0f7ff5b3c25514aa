"""The networks and their life cycle: architectures, the model kinds (GAN, VAE, oracle, GAN encoder) with their
train steps, a training run, export to TF Serving SavedModels, and the read side of a model folder (which versions
exist, their metadata, which folder a command uses).

Imports `data`, `host` (the projector export composes plugin loss terms) and `base`.
"""
