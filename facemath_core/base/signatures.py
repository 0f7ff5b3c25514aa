"""The exported models' public API: model names, signature names and tensor aliases, named once, here.

Export writes these signatures, both backends call them, the stand-in server serves them, and the deployment files
refer to the model names. All tensors are float32 with the batch dimension first (TF Serving's batching concatenates
requests along it), except `metadata`'s JSON strings and the projector's `pixels` and `known` (uint8); BatchNorm runs
in inference mode; gradients are per example.
"""

from __future__ import annotations

from dataclasses import dataclass

# Model names, as directories under the model base path and as TF Serving model names.
GENERATOR = "generator"
DISCRIMINATOR = "discriminator"
VAE_ENCODER = "vae_encoder"
VAE_DECODER = "vae_decoder"
ORACLE = "attribute_oracle"
GAN_ENCODER = "gan_encoder"  # an encoder trained to invert one generator version (`facemath train encoder`)
# The VAE-GAN (Larsen et al. 2016, `facemath train vaegan`): its decoder is also its GAN's generator, and its
# discriminator's intermediate features are the learned similarity its encoder and decoder are trained with.
VAEGAN_ENCODER = "vaegan_encoder"
VAEGAN_DECODER = "vaegan_decoder"
VAEGAN_DISCRIMINATOR = "vaegan_discriminator"
MODEL_NAMES = (
    GENERATOR,
    DISCRIMINATOR,
    VAE_ENCODER,
    VAE_DECODER,
    ORACLE,
    GAN_ENCODER,
    VAEGAN_ENCODER,
    VAEGAN_DECODER,
    VAEGAN_DISCRIMINATOR,
)
# Composite models, built from exported ones: the projector is the generator and the discriminator in one graph,
# so that a projection step is one request (facemath_core/models/projector_export.py).
PROJECTOR = "projector"
COMPOSITE_NAMES = (PROJECTOR,)

# Which models each kind of training run exports: `model_kinds.KINDS` (`ModelKind.served`).

# The model families a command chooses with `--model`: the decoder projected onto (or decoding a family's latents);
# the encoder that inverts each decoder (`--init encoder`, `facemath encode`); the discriminator beside it (the
# perceptual loss). The VAE has no discriminator.
FAMILIES = {"gan": GENERATOR, "vae": VAE_DECODER, "vaegan": VAEGAN_DECODER}
ENCODER_OF = {GENERATOR: GAN_ENCODER, VAE_DECODER: VAE_ENCODER, VAEGAN_DECODER: VAEGAN_ENCODER}
DISCRIMINATOR_OF = {GENERATOR: DISCRIMINATOR, VAEGAN_DECODER: VAEGAN_DISCRIMINATOR}
# Encoders trained with their decoder in one run (a VAE's), which give the mean and log-variance of z; the
# gan_encoder is trained afterwards for an exported generator and gives z.
VARIATIONAL_ENCODERS = (VAE_ENCODER, VAEGAN_ENCODER)
# Their families: the prior is N(0, I), the one the KL term pulls the posteriors to, and the round trip is
# Dec(Enc(x)).
VARIATIONAL_FAMILIES = ("vae", "vaegan")

# Signature names.
DEFAULT = "serving_default"
VJP = "vjp"
GRAD = "grad"
# An intermediate layer's activations, flattened: the VAE-GAN discriminator's Dis_l and the oracle's penultimate
# layer (the feature network of the Frechet distance, base/metrics.py). The signature and its one output share
# this name.
FEATURES = "features"
METADATA = "metadata"
STEP = "step"
# The projection step with the targets as 8-bit pixels (a quarter of the bytes of float32), converted to [-1, 1] on
# the server; with a 0/1 mask, or without one (every pixel known) for plain projection. Since projector version 3.
STEP_PIXELS = "step_pixels"
STEP_PIXELS_UNMASKED = "step_pixels_unmasked"

# Tensor aliases.
Z = "z"
IMAGES = "images"
COTANGENT = "cotangent"
Z_COTANGENT = "z_cotangent"  # the gan_encoder's vjp: an upstream gradient on its z output
Z_GRAD = "z_grad"
LOGITS = "logits"
IMAGES_GRAD = "images_grad"
Z_MEAN = "z_mean"
Z_LOG_VAR = "z_log_var"
ATTRIBUTE_LOGITS = "attribute_logits"
METADATA_INDEX = "index"  # a dummy batch input: TF Serving needs one to size the answer
METADATA_JSON = "metadata_json"
TARGET = "target"
MASK = "mask"
LOSS_WEIGHTS = "loss_weights"
PIXELS = "pixels"  # uint8 RGB, 0..255: the target images as read (value v is v / 127.5 - 1 in the models' range)
KNOWN = "known"  # uint8, 1 = a known pixel, 0 = one to fill in
LOSSES = "losses"
TOTAL = "total"

# The loss terms the projector's `step` computes, one column each of `loss_weights` and `losses`, in this order:
# (column name, built-in loss term, its parameters). A run whose terms are all among these (with these parameters)
# takes one request per step; any other term (a third-party plugin, other parameters) uses vjp + grad instead.
PROJECTOR_TERMS: tuple[tuple[str, str, dict], ...] = (
    ("contextual", "contextual", {}),
    ("weighted-contextual", "weighted-contextual", {"window": 7}),
    ("l2", "l2", {}),
    ("perceptual", "perceptual", {"form": "nonsaturating"}),
    ("perceptual-saturating", "perceptual", {"form": "saturating"}),
    ("lowres", "lowres", {"factor": 4}),
)

METADATA_FILE = "facemath_metadata.json"  # also written in assets.extra/, for readers without a session


@dataclass(frozen=True)
class Signature:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


_METADATA_SIGNATURE = Signature((METADATA_INDEX,), (METADATA_JSON,))

# The generator and the VAE decoder serve the same signatures: z in, images out.
_DECODER_SIGNATURES = {
    DEFAULT: Signature((Z,), (IMAGES,)),
    VJP: Signature((Z, COTANGENT), (IMAGES, Z_GRAD)),
    METADATA: _METADATA_SIGNATURE,
}

SIGNATURES: dict[str, dict[str, Signature]] = {
    GENERATOR: dict(_DECODER_SIGNATURES),
    DISCRIMINATOR: {
        DEFAULT: Signature((IMAGES,), (LOGITS,)),
        GRAD: Signature((IMAGES,), (LOGITS, IMAGES_GRAD)),
        METADATA: _METADATA_SIGNATURE,
    },
    VAE_ENCODER: {
        DEFAULT: Signature((IMAGES,), (Z_MEAN, Z_LOG_VAR)),
        METADATA: _METADATA_SIGNATURE,
    },
    VAE_DECODER: dict(_DECODER_SIGNATURES),
    ORACLE: {
        DEFAULT: Signature((IMAGES,), (ATTRIBUTE_LOGITS,)),
        METADATA: _METADATA_SIGNATURE,
    },
    # Its vjp carries the in-domain loss's gradient through E(G(z)) on a remote backend.
    GAN_ENCODER: {
        DEFAULT: Signature((IMAGES,), (Z,)),
        VJP: Signature((IMAGES, Z_COTANGENT), (Z, IMAGES_GRAD)),
        METADATA: _METADATA_SIGNATURE,
    },
    VAEGAN_ENCODER: {
        DEFAULT: Signature((IMAGES,), (Z_MEAN, Z_LOG_VAR)),
        METADATA: _METADATA_SIGNATURE,
    },
    VAEGAN_DECODER: dict(_DECODER_SIGNATURES),
    VAEGAN_DISCRIMINATOR: {
        DEFAULT: Signature((IMAGES,), (LOGITS,)),
        GRAD: Signature((IMAGES,), (LOGITS, IMAGES_GRAD)),
        FEATURES: Signature((IMAGES,), (FEATURES,)),
        METADATA: _METADATA_SIGNATURE,
    },
    PROJECTOR: {
        STEP: Signature((Z, TARGET, MASK, LOSS_WEIGHTS), (LOSSES, TOTAL, Z_GRAD, IMAGES)),
        METADATA: _METADATA_SIGNATURE,
    },
}

# Signatures a newer export has beside the ones above. A client uses one when the served version has it and the
# version's older signatures otherwise, so old exports keep working.
OPTIONAL_SIGNATURES: dict[str, dict[str, Signature]] = {
    # The penultimate layer (global average pooling), since issue 32: the Frechet distance's features.
    ORACLE: {FEATURES: Signature((IMAGES,), (FEATURES,))},
    PROJECTOR: {
        STEP_PIXELS: Signature((Z, PIXELS, KNOWN, LOSS_WEIGHTS), (LOSSES, TOTAL, Z_GRAD, IMAGES)),
        STEP_PIXELS_UNMASKED: Signature((Z, PIXELS, LOSS_WEIGHTS), (LOSSES, TOTAL, Z_GRAD, IMAGES)),
    },
}


def model_name(base: str, prefix: str = "") -> str:
    """Several trained families live side by side as `<prefix>_<model>` (e.g. `celeba_generator`)."""
    return f"{prefix}_{base}" if prefix else base


def base_name(name: str) -> str | None:
    """The model a served name is (`celeba_generator` -> `generator`), or None. The longest name that fits wins:
    `vaegan_discriminator` is not a prefixed `discriminator`."""
    for base in sorted((*MODEL_NAMES, *COMPOSITE_NAMES), key=len, reverse=True):
        if name == base or name.endswith("_" + base):
            return base
    return None
