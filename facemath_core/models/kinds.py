"""The kinds of model facemath trains, one entry each: how to build one for training and what its networks serve as.

`training.train` and `export.export_run` read this table and nothing else about a kind, so a new kind (a GAN
encoder, say) is a `TrainableModel` subclass and one `ModelKind` here. Model classes are imported only when built,
so reading the table does not load TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.models.architectures import ArchConfig
from facemath_core.models.encoders import generator_for_training, warm_start_for_training

if TYPE_CHECKING:
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.trainable import TrainableModel


@dataclass(frozen=True)
class ModelKind:
    """One kind of training run."""

    name: str
    build: Callable[[ArchConfig, TrainOptions], TrainableModel]  # the model, compiled with its optimizers
    served: dict[str, str]  # checkpoint name of each network (`TrainableModel.networks`) -> its served model name
    needs_labels: bool = False  # trained on attribute labels; its outputs are the data's attributes
    # A new run's architecture and options from the command line's: (cfg, options) -> (cfg, options), e.g. the
    # encoder's image and z sizes from the generator it inverts. None: as given.
    configure: Callable[[ArchConfig, TrainOptions], tuple[ArchConfig, TrainOptions]] | None = None


def _adam(options: TrainOptions, lr: float | None = None, beta_1: float | None = None):
    import keras

    beta_1 = options.beta1 if beta_1 is None else beta_1
    optimizer = keras.optimizers.Adam(learning_rate=lr or options.lr, beta_1=beta_1)
    if keras.mixed_precision.global_policy().name == "mixed_float16":  # training's --mixed-precision
        # Dynamic loss scaling: float16 gradients would underflow; steps with inf/NaN gradients are skipped.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _gan(cfg: ArchConfig, options: TrainOptions):
    from facemath_core.models.gan import DCGAN  # imports Keras: deferred until a DCGAN is built

    model = DCGAN(
        cfg,
        options.seed,
        label_smoothing=options.label_smoothing,
        instance_noise=options.instance_noise,
        latent_recon=options.latent_recon,
    )
    model.compile(d_optimizer=_adam(options, options.d_lr), g_optimizer=_adam(options))
    return model


def _vae(cfg: ArchConfig, options: TrainOptions):
    from facemath_core.models.vae import VAE  # imports Keras: deferred until a VAE is built

    model = VAE(cfg, options.seed, beta=options.beta)
    model.compile(optimizer=_adam(options))
    return model


def _oracle(cfg: ArchConfig, options: TrainOptions):
    from facemath_core.models.oracle import Oracle  # imports Keras: deferred until a Oracle is built

    model = Oracle(cfg, options.seed)
    model.compile(optimizer=_adam(options, beta_1=0.9))  # a classifier: Adam's usual momentum, not the GAN's
    return model


def _encoder(cfg: ArchConfig, options: TrainOptions):
    from facemath_core.models.gan_encoder import GANEncoder  # imports Keras: deferred until a GANEncoder is built

    model = GANEncoder(cfg, options.seed)
    model.compile(optimizer=_adam(options))
    return model


def _vaegan(cfg: ArchConfig, options: TrainOptions):
    from facemath_core.models.vaegan import VAEGAN  # imports Keras: deferred until a VAEGAN is built

    model = VAEGAN(cfg, options.seed, gamma=options.gamma, beta=options.beta)
    # One Adam per network (the DCGAN's 2e-4, beta1 0.5 by default); --d-lr sets the discriminator's apart.
    model.compile(e_optimizer=_adam(options), g_optimizer=_adam(options), d_optimizer=_adam(options, options.d_lr))
    return model


def _variational_configure(cfg: ArchConfig, options: TrainOptions):
    """A VAE's prior is N(0, I), the one its KL term pulls the posterior to (the VAE-GAN's too): its prior samples,
    exports and projections use that. (Before issue 32 the VAE kept --z-dist's uniform default: vae_decoder/1's
    metadata says uniform, and the report draws its prior samples from N(0, I) regardless.)"""
    return replace(cfg, z_distribution="normal"), options


def _encoder_configure(cfg: ArchConfig, options: TrainOptions):

    return warm_start_for_training(*generator_for_training(cfg, options))


KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind("gan", _gan, {"generator": S.GENERATOR, "discriminator": S.DISCRIMINATOR}),
        ModelKind("vae", _vae, {"encoder": S.VAE_ENCODER, "decoder": S.VAE_DECODER}, configure=_variational_configure),
        ModelKind("oracle", _oracle, {"classifier": S.ORACLE}, needs_labels=True),
        ModelKind("encoder", _encoder, {"encoder": S.GAN_ENCODER}, configure=_encoder_configure),
        ModelKind(
            "vaegan",
            _vaegan,
            {"encoder": S.VAEGAN_ENCODER, "decoder": S.VAEGAN_DECODER, "discriminator": S.VAEGAN_DISCRIMINATOR},
            configure=_variational_configure,
        ),
    )
}


def model_kind(name: str, where: str = "kind of run") -> ModelKind:
    """The table entry for `name`, or an error naming the known kinds."""
    if name not in KINDS:
        raise FacemathError(f"unknown {where} {name!r}; choose {', '.join(KINDS)}")
    return KINDS[name]
