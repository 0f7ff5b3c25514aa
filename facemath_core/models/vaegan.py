"""The VAE-GAN of Larsen, Sønderby, Larochelle and Winther 2016, "Autoencoding beyond pixels using a learned
similarity metric" (ICML; arXiv:1512.09300): a VAE whose decoder is also a GAN's generator, and whose
reconstruction error is measured in the GAN discriminator's features instead of in pixels.

Three networks (models/architectures.py, the DCGAN shapes on Keras 3: BatchNorm momentum 0.9 and epsilon 1e-5,
weights N(0, 0.02)):

- Enc: the VAE encoder (the discriminator's downsampling stack, then the mean and log-variance of z);
- Dec = Gen: the DCGAN generator, z -> image (Sec. 2: decoder and generator both map z to x, so they are one
  network);
- Dis: the DCGAN discriminator, which also returns Dis_l(x), the activations of its last 8x8 block
  (`build_vaegan_discriminator`).

The losses (Sec. 2), with x a batch of faces, z ~ Enc(x) = q(z|x) by the reparameterisation trick, x~ = Dec(z)
and x_p = Dec(z_p) for z_p ~ p(z) = N(0, I):

- L_prior = KL(q(z|x) || p(z)), summed over z's dimensions (the VAE's prior term);
- L_llike^Dis_l = -E_q[log p(Dis_l(x) | z)] with the Gaussian observation model p(Dis_l(x) | z) =
  N(Dis_l(x) | Dis_l(x~), I): half the squared distance between Dis_l(x) and Dis_l(x~), summed over the features
  (the Gaussian's constant dropped), in place of the VAE's pixel likelihood;
- L_GAN = log Dis(x) + log(1 - Dis(x_p)) + log(1 - Dis(x~)): the reconstructions are a second kind of fake besides
  the prior samples ("Discriminating based on samples from p(z) and q(z|x)").

Each network is updated from one forward pass with its own loss (Algorithm 1; "Limiting error signals to relevant
networks": the encoder never sees L_GAN, the discriminator never sees L_llike):

- Enc: L_prior + L_llike^Dis_l (`beta` x L_prior; beta = 1, the paper's, by default);
- Dec: gamma x L_llike^Dis_l - L_GAN, with the GAN term in the form GANs are trained in practice (and models/gan.py
  trains the DCGAN): the non-saturating -log Dis(x~) - log Dis(x_p) in place of log(1 - Dis(.)) (Goodfellow et al.
  2014, Sec. 3), which has the same fixed point and does not vanish while Dis wins;
- Dis: -L_GAN, the binary cross-entropy of real x against both fakes, x~ and x_p, each term a batch mean.

gamma weighs content (reconstruction) against style (realism) in the decoder's loss ("Weighting VAE vs. GAN"). The
paper gives no value for it; the authors' code (andersbll/autoencoding_beyond_pixels, celeba_aegan.py:
`recon_vs_gan_weight=1e-5`, on a 16,384-feature Dis_l of raw convolution outputs) does not transfer to this Dis_l,
8,192 activations after BatchNorm and LeakyReLU, whose L_llike starts near 2,600 and falls to about 360 by step
3,000 (the shipped run, width 32). The default here, gamma = 1e-2 (`--gamma`), keeps gamma x L_llike between about
26 and 3.6 over training, against a decoder GAN term of 10 to 20 while the discriminator wins: the reconstruction
signal matters to the decoder without drowning the adversarial one (docs/models.md shows the curves of the shipped
run, and what 3,000 CPU steps did not reach: prior samples).

As in the authors' code (model/aegan.py), Dis sees one batch of x, x~ and x_p together, and so its BatchNorm
normalises by their joint statistics; Dis_l(x) and Dis_l(x~) come from that same pass.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from facemath_core.base import signatures as S
from facemath_core.base.metrics import psnr
from facemath_core.data.images import to_unit
from facemath_core.data.pipeline import load_split
from facemath_core.models.architectures import (
    ArchConfig,
    build_encoder,
    build_generator,
    build_vaegan_discriminator,
    sample_z,
)
from facemath_core.models.trainable import TrainableModel
from facemath_core.models.vae import kl_divergence


def dis_l_likelihood(real_features, reconstructed_features):
    """L_llike^Dis_l (eqs. 5-6): -log N(Dis_l(x) | Dis_l(x~), I) per image without its constant, i.e. half the
    squared distance summed over the features, averaged over the batch."""
    return tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(real_features - reconstructed_features), axis=1))


def _bce(logits, label: float):
    return tf.reduce_mean(keras.losses.binary_crossentropy(tf.fill(tf.shape(logits), label), logits, from_logits=True))


def discriminator_loss(real_logits, reconstructed_logits, prior_logits):
    """-L_GAN for Dis: real faces against both kinds of fake, the reconstructions and the prior samples."""
    return _bce(real_logits, 1.0) + _bce(reconstructed_logits, 0.0) + _bce(prior_logits, 0.0)


def decoder_gan_loss(reconstructed_logits, prior_logits):
    """The decoder's share of -L_GAN in its non-saturating form: -log Dis(x~) - log Dis(x_p)."""
    return _bce(reconstructed_logits, 1.0) + _bce(prior_logits, 1.0)


class VAEGAN(TrainableModel):
    """Encoder, decoder (= generator) and discriminator, trained together; one `train_step` updates all three."""

    def __init__(self, cfg: ArchConfig, seed: int = 0, gamma: float = 1e-2, beta: float = 1.0, **kwargs):
        super().__init__(cfg, seed, **kwargs)
        self.gamma = gamma
        self.beta = beta
        self.encoder = build_encoder(cfg)
        self.decoder = build_generator(cfg)
        self.discriminator = build_vaegan_discriminator(cfg)
        self.trackers = [
            keras.metrics.Mean(name="kl"),
            keras.metrics.Mean(name="llike"),  # L_llike^Dis_l
            keras.metrics.Mean(name="g_loss"),  # the decoder's GAN term
            keras.metrics.Mean(name="d_loss"),
            keras.metrics.Mean(name="D(x)"),
            keras.metrics.Mean(name="D(x~)"),
            keras.metrics.Mean(name="D(x_p)"),
            keras.metrics.Mean(name="pixel"),  # MSE of x~ against x (watched, not trained on)
        ]

    def compile(self, e_optimizer, g_optimizer, d_optimizer, jit_compile=False):
        super().compile(jit_compile=jit_compile)
        self.e_optimizer = e_optimizer
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    def networks(self):
        return {"encoder": self.encoder, "decoder": self.decoder, "discriminator": self.discriminator}

    def optimized(self):
        return {
            "e_optimizer": (self.e_optimizer, self.encoder.trainable_variables),
            "g_optimizer": (self.g_optimizer, self.decoder.trainable_variables),
            "d_optimizer": (self.d_optimizer, self.discriminator.trainable_variables),
        }

    def _normal(self, shape):
        return self.replica_noise(lambda s: keras.random.normal(s, seed=self.seed_generator), shape)

    def train_step(self, images):
        batch = tf.shape(images)[0]
        epsilon = self._normal((batch, self.cfg.z_dim))
        z_p = self._normal((batch, self.cfg.z_dim))
        with tf.GradientTape(persistent=True) as tape:
            z_mean, z_log_var = self.encoder(images, training=True)
            z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
            # One decoder pass for x~ and x_p, one discriminator pass for x, x~ and x_p (the authors' batching).
            decoded = self.decoder(tf.concat([z, z_p], 0), training=True)
            reconstructions, samples = tf.split(decoded, 2)
            judged = self.discriminator(tf.concat([tf.cast(images, decoded.dtype), decoded], 0), training=True)
            real_logits, recon_logits, prior_logits = tf.split(judged[S.LOGITS], 3)
            real_features, recon_features, _ = tf.split(judged[S.FEATURES], 3)
            kl = kl_divergence(z_mean, z_log_var)
            llike = dis_l_likelihood(real_features, recon_features)
            g_gan = decoder_gan_loss(recon_logits, prior_logits)
            d_loss = discriminator_loss(real_logits, recon_logits, prior_logits)
            e_loss = self.beta * kl + llike
            g_loss = self.gamma * llike + g_gan
        # Every gradient from the one forward pass first, then the three updates (Algorithm 1).
        steps = [
            (self.e_optimizer, e_loss, self.encoder.trainable_variables),
            (self.g_optimizer, g_loss, self.decoder.trainable_variables),
            (self.d_optimizer, d_loss, self.discriminator.trainable_variables),
        ]
        gradients = [self.loss_gradients(tape, loss, variables, optimizer) for optimizer, loss, variables in steps]
        del tape
        for (optimizer, _, variables), grads in zip(steps, gradients, strict=True):
            self.step_optimizer(optimizer, grads, variables)
        pixel = tf.reduce_mean(tf.square(tf.cast(reconstructions, tf.float32) - tf.cast(images, tf.float32)))
        return self.report(
            kl,
            llike,
            g_gan,
            d_loss,
            tf.reduce_mean(tf.sigmoid(real_logits)),
            tf.reduce_mean(tf.sigmoid(recon_logits)),
            tf.reduce_mean(tf.sigmoid(prior_logits)),
            pixel,
        )

    # The hooks training.train drives every model kind through (the rest are TrainableModel's defaults).

    @property
    def step_counter(self):
        return self.g_optimizer.iterations

    def prepare(self, images, labels, options):
        self.grid_images = to_unit(images[:16])
        self.grid_z = sample_z(self.cfg, 32, seed=options.seed + 1)

    def reconstruct(self, images):
        """Dec(Enc(x)) from the encoder's mean, in inference mode (as the exports run)."""
        z_mean, _ = self.encoder(images, training=False)
        return self.decoder(z_mean, training=False)

    def sample_grid_images(self):
        """Rows of eight: originals and their reconstructions alternating (16 faces), then 32 prior samples."""
        recon = self.reconstruct(self.grid_images).numpy()
        rows = [block for i in range(0, 16, 8) for block in (self.grid_images[i : i + 8], recon[i : i + 8])]
        return np.concatenate([*rows, self.decoder(self.grid_z, training=False).numpy()])

    def summary_record(self, data_dir: str, options) -> dict:
        """Dec(Enc(x))'s PSNR (the encoder's mean) on up to 512 held-out faces of the training folder."""
        record = {}
        held_out = load_split(data_dir, self.cfg.image_size, "held-out")
        if held_out.names:
            images = to_unit(held_out.images[:512])
            recon = np.concatenate([self.reconstruct(images[i : i + 128]).numpy() for i in range(0, len(images), 128)])
            record["held_out_images"] = len(images)
            record["held_out_psnr"] = float(np.mean(psnr(images, recon)))
        return record
