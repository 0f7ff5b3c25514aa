"""The network shapes: DCGAN generator and discriminator (Radford et al. 2016), the VAE built from them, the oracle.

DCGAN details that matter on Keras 3 (seen in facemath's first prototype): BatchNormalization needs momentum 0.9
and epsilon 1e-5 (Keras' 0.99 / 1e-3 gave noisy, collapsed samples), and weights need N(0, 0.02) (not glorot).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError

IMAGE_SIZES = (32, 64, 128)
Z_DISTRIBUTIONS = ("uniform", "normal")


@dataclass(frozen=True)
class ArchConfig:
    """What decides a network's shape; saved in every run and export so a model can be rebuilt exactly."""

    image_size: int = 64
    z_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    z_distribution: str = "uniform"  # U(-1, 1) as in DCGAN, or N(0, 1)
    spectral_norm: bool = False  # in the discriminator; a stabiliser, off in the Radford recipe
    attribute_names: tuple[str, ...] = field(default_factory=tuple)  # for the oracle

    def __post_init__(self):
        if self.image_size not in IMAGE_SIZES:
            raise FacemathError(
                f"--image-size {self.image_size}: the DCGAN architecture makes {', '.join(map(str, IMAGE_SIZES))}"
            )
        for name in ("z_dim", "ngf", "ndf"):
            if getattr(self, name) < 1:
                raise FacemathError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if self.z_distribution not in Z_DISTRIBUTIONS:
            raise FacemathError(f"--z-dist {self.z_distribution!r}: choose uniform or normal")

    @property
    def n_up(self) -> int:
        """Number of stride-2 layers between 4x4 and the image size."""
        return int(math.log2(self.image_size // 4))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attribute_names"] = list(self.attribute_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ArchConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["attribute_names"] = tuple(known.get("attribute_names", ()))
        return cls(**known)


def _init():
    import keras

    return keras.initializers.RandomNormal(0.0, 0.02)


def _bn():
    import keras

    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02)
    )


def _upsampling_stack(x, cfg: ArchConfig, width: int, out_channels: int):
    """Dense -> 4x4xC, then 5x5 stride-2 transposed convolutions with BN + ReLU, halving channels; tanh output."""
    import keras
    from keras import layers

    channels = width * 2 ** (cfg.n_up - 1)
    x = layers.Dense(4 * 4 * channels, use_bias=False, kernel_initializer=_init(), name="project")(x)
    x = layers.Reshape((4, 4, channels))(x)
    x = layers.ReLU()(_bn()(x))
    for i in range(cfg.n_up - 1):
        channels //= 2
        x = layers.Conv2DTranspose(
            channels, 5, strides=2, padding="same", use_bias=False, kernel_initializer=_init(), name=f"up{i}"
        )(x)
        x = layers.ReLU()(_bn()(x))
    x = layers.Conv2DTranspose(out_channels, 5, strides=2, padding="same", kernel_initializer=_init(), name="to_rgb")(x)
    return keras.layers.Activation("tanh", dtype="float32")(x)


def _downsampling_stack(x, cfg: ArchConfig, width: int, spectral_norm: bool = False, taps: list | None = None):
    """5x5 stride-2 convolutions with LeakyReLU 0.2, BatchNorm on all but the first, down to 4x4. `taps`, when
    given, receives each block's activations (the VAE-GAN's Dis_l is one of them)."""
    from keras import layers

    channels = width
    for i in range(cfg.n_up):
        conv = layers.Conv2D(
            channels, 5, strides=2, padding="same", use_bias=i == 0, kernel_initializer=_init(), name=f"down{i}"
        )
        if spectral_norm:
            conv = layers.SpectralNormalization(conv, name=f"sn_down{i}")
        x = conv(x)
        if i > 0 and not spectral_norm:
            x = _bn()(x)
        x = layers.LeakyReLU(0.2)(x)
        if taps is not None:
            taps.append(x)
        channels *= 2
    return layers.Flatten()(x)


def build_generator(cfg: ArchConfig):
    import keras

    z = keras.Input((cfg.z_dim,), name="z")
    return keras.Model(z, _upsampling_stack(z, cfg, cfg.ngf, 3), name="generator")


def build_discriminator(cfg: ArchConfig):
    import keras

    images = keras.Input((cfg.image_size, cfg.image_size, 3), name="images")
    features = _downsampling_stack(images, cfg, cfg.ndf, cfg.spectral_norm)
    # Outputs in float32 (a no-op by default): under --mixed-precision the losses must not be computed in float16.
    logits = keras.layers.Dense(1, kernel_initializer=_init(), name="logit", dtype="float32")(features)
    return keras.Model(images, keras.layers.Reshape((), dtype="float32")(logits), name="discriminator")


def build_encoder(cfg: ArchConfig):
    """The VAE encoder mirrors the discriminator and ends in the mean and log-variance of z."""
    import keras

    images = keras.Input((cfg.image_size, cfg.image_size, 3), name="images")
    features = _downsampling_stack(images, cfg, cfg.ndf)
    z_mean = keras.layers.Dense(cfg.z_dim, kernel_initializer=_init(), name="z_mean", dtype="float32")(features)
    z_log_var = keras.layers.Dense(cfg.z_dim, kernel_initializer="zeros", name="z_log_var", dtype="float32")(features)
    return keras.Model(images, [z_mean, z_log_var], name="vae_encoder")


def build_decoder(cfg: ArchConfig):
    """The VAE decoder is shaped like the generator."""
    import keras

    z = keras.Input((cfg.z_dim,), name="z")
    return keras.Model(z, _upsampling_stack(z, cfg, cfg.ngf, 3), name="vae_decoder")


def build_oracle(cfg: ArchConfig):
    """A small CNN with one logit per attribute: the judge of reconstructions and arithmetic. Outputs a dict:
    `attribute_logits` (B, attributes) and `features` (B, 128), its penultimate layer (the global average pool),
    the feature network of the Frechet distance (base/metrics.py)."""
    import keras
    from keras import layers

    if not cfg.attribute_names:
        raise FacemathError("the attribute oracle needs a data folder with an attribute file")
    images = keras.Input((cfg.image_size, cfg.image_size, 3), name="images")
    x = images
    # Cheap early layers, wider late ones: the attributes are large features, not fine texture.
    for i, channels in enumerate((32, 64, 128, 128)):
        x = layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.ReLU()(layers.BatchNormalization(name=f"bn{i}")(x))
        if i < 3:
            x = layers.MaxPooling2D()(x)
    features = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(features)
    logits = layers.Dense(len(cfg.attribute_names), name="attribute_logits", dtype="float32")(x)
    features = layers.Activation("linear", dtype="float32", name="features")(features)
    return keras.Model(images, {S.ATTRIBUTE_LOGITS: logits, S.FEATURES: features}, name="attribute_oracle")


def z_bound(z_distribution: str) -> float:
    """The box z lives in: the support of U(-1, 1), or +-3 standard deviations of N(0, 1). Projection's
    constraints keep z in it and the GAN encoder's outputs are squashed into it."""
    return 1.0 if z_distribution == "uniform" else 3.0


def sample_z(cfg: ArchConfig, n: int, seed=None):
    """Draw n latent vectors from the model's prior, as float32 numpy."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if cfg.z_distribution == "normal":
        return rng.standard_normal((n, cfg.z_dim)).astype(np.float32)
    return rng.uniform(-1.0, 1.0, (n, cfg.z_dim)).astype(np.float32)


def prior_config(metadata: dict) -> ArchConfig:
    """The shape and prior of an exported decoder's z, from its metadata. A VAE's or VAE-GAN's prior is N(0, I),
    whatever an export made before issue 32 recorded (vae_decoder/1 says uniform: the VAE kind kept --z-dist's
    default until then)."""
    prior = "normal" if metadata.get("family") in S.VARIATIONAL_FAMILIES else metadata["z_distribution"]
    return ArchConfig(image_size=metadata["image_size"], z_dim=metadata["z_dim"], z_distribution=prior)


def draw_prior(cfg: ArchConfig, seed_generator):
    """The GAN's z prior as a `draw(shape)` function: U(-1, 1), or N(0, 1) when cfg.z_distribution is normal."""
    import keras

    def draw(shape):
        if cfg.z_distribution == "normal":
            return keras.random.normal(shape, seed=seed_generator)
        return keras.random.uniform(shape, -1.0, 1.0, seed=seed_generator)

    return draw


def build_gan_encoder(cfg: ArchConfig):
    """The discriminator's downsampling stack, then a dense layer to z and bound * tanh(. / bound)."""
    import keras
    import tensorflow as tf

    images = keras.Input((cfg.image_size, cfg.image_size, 3), name="images")
    features = _downsampling_stack(images, cfg, cfg.ndf)
    raw = keras.layers.Dense(cfg.z_dim, kernel_initializer=_init(), name="z_raw", dtype="float32")(features)
    bound = z_bound(cfg.z_distribution)
    # bound * tanh(x / bound): the identity near 0, and never outside the box the generator was trained on.
    z = keras.layers.Lambda(lambda x: bound * tf.tanh(x / bound), name="z", dtype="float32")(raw)
    return keras.Model(images, z, name=S.GAN_ENCODER)


def vaegan_feature_block(cfg: ArchConfig) -> int:
    """Which block of the VAE-GAN discriminator is Dis_l: the last before the 4x4 one (8x8 at every image size;
    8x8x128 = 8,192 features at ndf 32). Larsen et al.'s 64x64 code takes their fourth convolution, also at 8x8."""
    return cfg.n_up - 2


def build_vaegan_discriminator(cfg: ArchConfig):
    """The DCGAN discriminator with a second output: `features`, the flattened activations of an intermediate
    block (Dis_l of Larsen et al. 2016), whose distance is the VAE-GAN's learned similarity. Outputs a dict
    {logits (B,), features (B, F)}."""
    import keras

    images = keras.Input((cfg.image_size, cfg.image_size, 3), name="images")
    taps: list = []
    flat = _downsampling_stack(images, cfg, cfg.ndf, cfg.spectral_norm, taps)
    logits = keras.layers.Dense(1, kernel_initializer=_init(), name="logit", dtype="float32")(flat)
    features = keras.layers.Flatten(name="dis_l", dtype="float32")(taps[vaegan_feature_block(cfg)])
    outputs = {S.LOGITS: keras.layers.Reshape((), dtype="float32")(logits), S.FEATURES: features}
    return keras.Model(images, outputs, name=S.VAEGAN_DISCRIMINATOR)
