"""Built-in z initialisers: where the search for z starts."""

from __future__ import annotations

import numpy as np

from facemath_core import hookimpl
from facemath_core.components import Initializer


def uniform(targets, z_dim, bound, rng, backend):
    """Uniformly inside the prior's box (the DCGAN prior U(-1, 1))."""
    return rng.uniform(-bound, bound, (len(targets), z_dim)).astype(np.float32)


def normal(targets, z_dim, bound, rng, backend):
    """Standard normal draws, cut to the box."""
    return np.clip(rng.standard_normal((len(targets), z_dim)), -bound, bound).astype(np.float32)


def encoder(targets, z_dim, bound, rng, backend):
    """The VAE encoder's mean for each image (iGAN's hybrid: a feed-forward guess refined by optimisation)."""
    z_mean, _ = backend.encode(targets)
    return np.clip(z_mean, -bound, bound).astype(np.float32)


@hookimpl
def facemath_initializers():
    return [
        Initializer("uniform", "Uniform draws inside the prior's box.", uniform),
        Initializer("normal", "Standard normal draws, cut to the box.", normal),
        Initializer(
            "encoder",
            "The VAE encoder's z for each image (needs vae_encoder; iGAN's hybrid).",
            encoder,
            needs_models=("vae_encoder",),
        ),
    ]
