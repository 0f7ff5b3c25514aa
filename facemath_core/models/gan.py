"""DCGAN training as a Keras model whose `train_step` does one discriminator and one generator update.

Follows keras-io's dcgan_overriding_train_step.py; the options after the Radford recipe are the usual stabilisers,
off by default: one-sided label smoothing, instance noise, spectral normalisation in D (an architecture option) and
two time-scale learning rates (a separate D learning rate).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from facemath_core.models.architectures import (
    ArchConfig,
    build_discriminator,
    build_gan_encoder,
    build_generator,
    draw_prior,
    sample_z,
)
from facemath_core.models.trainable import TrainableModel


def discriminator_loss(real_logits, fake_logits, real_label: float = 1.0):
    real = keras.losses.binary_crossentropy(tf.fill(tf.shape(real_logits), real_label), real_logits, from_logits=True)
    fake = keras.losses.binary_crossentropy(tf.zeros_like(fake_logits), fake_logits, from_logits=True)
    return tf.reduce_mean(real) + tf.reduce_mean(fake)


def generator_loss(fake_logits):
    """The non-saturating loss: -log D(G(z))."""
    return tf.reduce_mean(keras.losses.binary_crossentropy(tf.ones_like(fake_logits), fake_logits, from_logits=True))


class DCGAN(TrainableModel):
    def __init__(
        self,
        cfg: ArchConfig,
        seed: int = 0,
        label_smoothing: float = 0.0,
        instance_noise: float = 0.0,
        noise_decay_steps: int = 20_000,
        latent_recon: float = 0.0,
        **kwargs,
    ):
        super().__init__(cfg, seed, **kwargs)
        self.generator = build_generator(cfg)
        self.discriminator = build_discriminator(cfg)
        # InfoGAN's mutual-information term with every z dimension as a code (Chen et al. 2016): a network Q,
        # trained with G, predicts z from G(z), and G pays latent_recon * ||Q(G(z)) - z||^2. A generator that
        # ignores a z direction cannot be inverted along it (docs/models.md, "Why z is not identifiable").
        self.latent_recon = latent_recon
        self.q = None
        if latent_recon:
            self.q = build_gan_encoder(cfg)  # the shape of the GAN encoder (`train encoder`), trained with G
        self.real_label = 1.0 - label_smoothing
        self.instance_noise = instance_noise
        self.noise_decay_steps = noise_decay_steps
        self.trackers = [
            keras.metrics.Mean(name="d_loss"),
            keras.metrics.Mean(name="g_loss"),
            keras.metrics.Mean(name="D(x)"),
            keras.metrics.Mean(name="D(G(z))"),
        ]
        if self.q is not None:
            self.trackers.append(keras.metrics.Mean(name="z_recon"))

    def compile(self, d_optimizer, g_optimizer, jit_compile=False):
        super().compile(jit_compile=jit_compile)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def networks(self):
        networks = {"generator": self.generator, "discriminator": self.discriminator}
        if self.q is not None:
            networks["q"] = self.q  # checkpointed and resumed; not exported (only the generator is served)
        return networks

    def _g_variables(self):
        return self.generator.trainable_variables + (self.q.trainable_variables if self.q is not None else [])

    def optimized(self):
        return {
            "g_optimizer": (self.g_optimizer, self._g_variables()),
            "d_optimizer": (self.d_optimizer, self.discriminator.trainable_variables),
        }

    def sample_latents(self, n):
        return self.replica_noise(draw_prior(self.cfg, self.seed_generator), (n, self.cfg.z_dim))

    def _noisy(self, images):
        if not self.instance_noise:
            return images
        # Instance noise (Sonderby et al.) decays linearly to zero: it blurs the two distributions early on.
        step = tf.cast(self.d_optimizer.iterations, tf.float32)
        std = self.instance_noise * tf.maximum(0.0, 1.0 - step / self.noise_decay_steps)
        return images + std * self.replica_noise(
            lambda s: keras.random.normal(s, seed=self.seed_generator), tf.shape(images)
        )

    def train_step(self, real_images):
        batch = tf.shape(real_images)[0]
        z = self.sample_latents(batch)
        with tf.GradientTape() as tape:
            fake_images = self.generator(z, training=True)
            real_logits = self.discriminator(self._noisy(real_images), training=True)
            fake_logits = self.discriminator(self._noisy(fake_images), training=True)
            d_loss = discriminator_loss(real_logits, fake_logits, self.real_label)
        self.descend(tape, d_loss, self.discriminator.trainable_variables, self.d_optimizer)

        z = self.sample_latents(batch)
        with tf.GradientTape() as tape:
            fake_images = self.generator(z, training=True)
            fake_logits = self.discriminator(self._noisy(fake_images), training=True)
            g_loss = generator_loss(fake_logits)
            loss, extra = g_loss, ()
            if self.q is not None:
                z_pred = tf.cast(self.q(fake_images, training=True), z.dtype)
                z_recon = tf.reduce_mean(tf.square(z_pred - z))
                loss, extra = g_loss + self.latent_recon * z_recon, (z_recon,)
        self.descend(tape, loss, self._g_variables(), self.g_optimizer)
        return self.report(
            d_loss, g_loss, tf.reduce_mean(tf.sigmoid(real_logits)), tf.reduce_mean(tf.sigmoid(fake_logits)), *extra
        )

    # The hooks training.train drives every model kind through (the rest are TrainableModel's defaults).

    @property
    def step_counter(self):
        return self.g_optimizer.iterations

    def prepare(self, images, labels, options):

        self.grid_z = sample_z(self.cfg, 64, seed=options.seed + 1)

    def sample_grid_images(self):
        return self.generator(self.grid_z, training=False).numpy()

    def sample_images(self, z):
        return self.generator(z, training=False)
