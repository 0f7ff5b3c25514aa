"""A VAE as a Keras model with its own `train_step` (keras-io vae.py): reconstruction + beta * KL."""

from __future__ import annotations

import keras
import tensorflow as tf

from facemath_core.data.images import to_unit
from facemath_core.models.architectures import ArchConfig, build_decoder, build_encoder
from facemath_core.models.trainable import TrainableModel


def reconstruction_loss(images, reconstructions):
    """Sum of squared errors per image (a Gaussian likelihood), averaged over the batch."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(images - reconstructions), axis=[1, 2, 3]))


def kl_divergence(z_mean, z_log_var):
    """KL(q(z|x) || N(0, I)) per image, averaged over the batch."""
    return tf.reduce_mean(-0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1))


class VAE(TrainableModel):
    def __init__(self, cfg: ArchConfig, seed: int = 0, beta: float = 1.0, **kwargs):
        super().__init__(cfg, seed, **kwargs)
        self.beta = beta
        self.encoder = build_encoder(cfg)
        self.decoder = build_decoder(cfg)
        self.trackers = [
            keras.metrics.Mean(name="loss"),
            keras.metrics.Mean(name="reconstruction"),
            keras.metrics.Mean(name="kl"),
        ]

    def networks(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def train_step(self, images):
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(images, training=True)
            epsilon = self.replica_noise(lambda s: keras.random.normal(s, seed=self.seed_generator), tf.shape(z_mean))
            z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
            reconstructions = self.decoder(z, training=True)
            rec = reconstruction_loss(images, reconstructions)
            kl = kl_divergence(z_mean, z_log_var)
            loss = rec + self.beta * kl
        self.descend(tape, loss, self.encoder.trainable_variables + self.decoder.trainable_variables)
        return self.report(loss, rec, kl)

    # The hooks training.train drives every model kind through (the rest are TrainableModel's defaults).

    def prepare(self, images, labels, options):

        self.grid_images = to_unit(images[:32])

    def reconstruct(self, images):
        z_mean, _ = self.encoder(images, training=False)
        return self.decoder(z_mean, training=False)

    def sample_grid_images(self):
        """Originals and reconstructions in alternating rows of eight."""
        import numpy as np

        recon = self.reconstruct(self.grid_images).numpy()
        rows = [block for i in range(0, 32, 8) for block in (self.grid_images[i : i + 8], recon[i : i + 8])]
        return np.concatenate(rows)
