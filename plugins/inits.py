"""Built-in z initialisers: where the search for z starts."""

from __future__ import annotations

import numpy as np

from facemath_core import Initializer, hookimpl


def uniform(targets, z_dim, bound, rng, backend):
    """Uniformly inside the prior's box (the DCGAN prior U(-1, 1))."""
    return rng.uniform(-bound, bound, (len(targets), z_dim)).astype(np.float32)


def normal(targets, z_dim, bound, rng, backend):
    """Standard normal draws, cut to the box."""
    return np.clip(rng.standard_normal((len(targets), z_dim)), -bound, bound).astype(np.float32)


def encoder(targets, z_dim, bound, rng, backend, encode):
    """The encoder of the model projected onto, E(x) for each image: iGAN's hybrid, a feed-forward guess refined
    by optimisation (the gan_encoder for --model gan, the VAE encoder's mean for --model vae)."""
    return np.clip(encode(targets), -bound, bound).astype(np.float32)


@hookimpl
def facemath_initializers():
    return [
        Initializer("uniform", "Uniform draws inside the prior's box.", uniform),
        Initializer("normal", "Standard normal draws, cut to the box.", normal),
        Initializer(
            "encoder",
            "E(x) from the model's own encoder (gan_encoder / vae_encoder; iGAN's hybrid).",
            encoder,
            needs_encoder=True,
        ),
    ]
