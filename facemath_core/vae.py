"""A VAE as a Keras model with its own `train_step` (keras-io vae.py): reconstruction + beta * KL."""

from __future__ import annotations

import keras
import tensorflow as tf

from facemath_core.architectures import ArchConfig, build_decoder, build_encoder


def reconstruction_loss(images, reconstructions):
    """Sum of squared errors per image (a Gaussian likelihood), averaged over the batch."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(images - reconstructions), axis=[1, 2, 3]))


def kl_divergence(z_mean, z_log_var):
    """KL(q(z|x) || N(0, I)) per image, averaged over the batch."""
    return tf.reduce_mean(-0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1))


class VAE(keras.Model):
    def __init__(self, cfg: ArchConfig, beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.beta = beta
        self.encoder = build_encoder(cfg)
        self.decoder = build_decoder(cfg)
        self.seed_generator = keras.random.SeedGenerator(7)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def train_step(self, images):
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(images, training=True)
            epsilon = keras.random.normal(tf.shape(z_mean), seed=self.seed_generator)
            z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
            reconstructions = self.decoder(z, training=True)
            rec = reconstruction_loss(images, reconstructions)
            kl = kl_divergence(z_mean, z_log_var)
            loss = rec + self.beta * kl
        variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(rec)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    # The hooks training.train drives every model kind through.

    @property
    def step_counter(self):
        return self.optimizer.iterations

    def prepare(self, images, labels, options):
        from facemath_core.images import to_unit

        self.grid_images = to_unit(images[:32])

    def dataset(self, images, labels, options):
        from facemath_core.dataset import make_dataset

        return make_dataset(images, options.batch_size, options.seed).repeat()

    def build_for_restore(self):
        self.optimizer.build(self.encoder.trainable_variables + self.decoder.trainable_variables)

    def reconstruct(self, images):
        z_mean, _ = self.encoder(images, training=False)
        return self.decoder(z_mean, training=False)

    def sample_grid_images(self):
        """Originals and reconstructions in alternating rows of eight."""
        import numpy as np

        recon = self.reconstruct(self.grid_images).numpy()
        rows = [block for i in range(0, 32, 8) for block in (self.grid_images[i : i + 8], recon[i : i + 8])]
        return np.concatenate(rows)

    def summary_record(self, data_dir: str, options) -> dict:
        return {}

    def checkpoint_objects(self) -> dict:
        return {"encoder": self.encoder, "decoder": self.decoder, "optimizer": self.optimizer}
