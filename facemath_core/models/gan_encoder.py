"""An encoder E: image -> z trained to invert a given, frozen generator (iGAN's hybrid, Zhu et al. 2016).

E has the DCGAN discriminator's shape and ends in z, squashed into the generator's z range. Its loss has two parts:
the latent loss on generated pairs, ||E(G(z)) - z||^2 with z drawn from the prior (iGAN's encoder), and the pixel
loss on the data's images, ||G(E(x)) - x||^2 (the in-domain encoder of Zhu et al. 2020, which is what makes E(x)
a good start for projecting a *real* face). The generator comes from an export (`facemath train encoder
--generator exported_models/generator`) and is only run, in inference mode, never trained.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from facemath_core.base import signatures as S
from facemath_core.base.metrics import psnr
from facemath_core.data.images import to_unit
from facemath_core.data.pipeline import load_split
from facemath_core.models.architectures import ArchConfig, build_gan_encoder, draw_prior
from facemath_core.models.layout import load_saved_model
from facemath_core.models.trainable import TrainableModel


def latent_loss(z, z_encoded):
    """Mean squared error between the drawn z and E(G(z)), averaged over dimensions and batch."""
    return tf.reduce_mean(tf.square(z_encoded - z))


def pixel_loss(images, reconstructions):
    """Mean squared error between x and G(E(x)), averaged over pixels and batch (images in [-1, 1])."""
    return tf.reduce_mean(tf.square(reconstructions - images))


def load_generator(version_dir: str):
    """The exported generator's `serving_default` as a differentiable z -> images function (it keeps the loaded
    SavedModel alive: its variables live as long as the function does)."""

    loaded = load_saved_model(version_dir)
    function = loaded.signatures[S.DEFAULT]

    def generate(z, _keep=loaded):
        return function(z=z)[S.IMAGES]

    return generate


class GANEncoder(TrainableModel):
    """Trains E for a frozen generator; `prepare` loads the generator named in the run's options.

    The pixel loss weighs 10x the latent loss: the latent MSE of a generator that maps many z to one face cannot
    fall much below ~0.1 (issue 14), while the pixel MSE must reach ~0.016 ([-1, 1] images, 24 dB); at 1:1 the
    irreducible latent error would steer E and leave G(E(x)) blurry.
    """

    def __init__(
        self, cfg: ArchConfig, seed: int = 0, latent_weight: float = 1.0, pixel_weight: float = 10.0, **kwargs
    ):
        super().__init__(cfg, seed, **kwargs)
        self.encoder = build_gan_encoder(cfg)
        self.latent_weight = latent_weight
        self.pixel_weight = pixel_weight
        self.generate = None  # set by `prepare`; a plain function, so Keras tracks none of the generator
        self.trackers = [
            keras.metrics.Mean(name="loss"),
            keras.metrics.Mean(name="latent"),
            keras.metrics.Mean(name="pixel"),
        ]

    def networks(self):
        return {"encoder": self.encoder}

    def sample_latents(self, n):
        return self.replica_noise(draw_prior(self.cfg, self.seed_generator), (n, self.cfg.z_dim))

    def train_step(self, images):
        z = self.sample_latents(tf.shape(images)[0])
        generated = tf.stop_gradient(self.generate(z))
        with tf.GradientTape() as tape:
            # One pass over generated and real images: one set of batch statistics for both.
            encoded = self.encoder(tf.concat([generated, images], 0), training=True)
            z_generated, z_real = tf.split(encoded, 2)
            latent = latent_loss(z, z_generated)
            pixel = pixel_loss(images, self.generate(z_real))
            loss = self.latent_weight * latent + self.pixel_weight * pixel
        self.descend(tape, loss, self.encoder.trainable_variables)
        return self.report(loss, latent, pixel)

    # The hooks training.train drives every model kind through (the rest are TrainableModel's defaults).

    def prepare(self, images, labels, options):

        self.generate = load_generator(options.generator)
        self.grid_images = to_unit(images[:32])

    def warm_start(self, run_dir: str) -> None:
        """E starts as the Q network of a GAN run trained with --latent-recon (checked by encoders.py): Q already
        inverts G on generated faces; training here adds the pixel loss on real ones."""
        checkpoint = tf.train.latest_checkpoint(f"{run_dir}/checkpoints")
        tf.train.Checkpoint(q=self.encoder).read(checkpoint).assert_existing_objects_matched().expect_partial()

    def reconstruct(self, images):
        return self.generate(self.encoder(images, training=False))

    def sample_grid_images(self):
        """Originals and G(E(x)) in alternating rows of eight."""
        import numpy as np

        recon = self.reconstruct(self.grid_images).numpy()
        rows = [block for i in range(0, 32, 8) for block in (self.grid_images[i : i + 8], recon[i : i + 8])]
        return np.concatenate(rows)

    def summary_record(self, data_dir: str, options) -> dict:
        """G(E(x))'s PSNR on up to 512 held-out faces of the training folder."""
        import numpy as np

        record = {}
        held_out = load_split(data_dir, self.cfg.image_size, "held-out")
        if held_out.names:
            images = to_unit(held_out.images[:512])
            recon = np.concatenate([self.reconstruct(images[i : i + 128]).numpy() for i in range(0, len(images), 128)])
            record["held_out_images"] = len(images)
            record["held_out_psnr"] = float(np.mean(psnr(images, recon)))
        return record
