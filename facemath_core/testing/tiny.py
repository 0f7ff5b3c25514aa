"""Tiny models and faces for a plugin's tests: every model facemath serves, with untrained networks of a few
thousand weights, written as `facemath export` writes them, in seconds and without a network.

The weights are drawn from a seeded generator, so two builds with one seed are the same models; the numbers they give
mean nothing (G(z) is a pattern that varies with z, not a face), the shapes, signatures and metadata are the real
ones.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.files import atomic_dir
from facemath_core.data.synth import ATTRIBUTES, write_synthetic_folder
from facemath_core.models.architectures import (
    ArchConfig,
    build_decoder,
    build_discriminator,
    build_encoder,
    build_gan_encoder,
    build_generator,
    build_oracle,
    build_vaegan_discriminator,
)
from facemath_core.models.export import model_metadata, write_saved_model
from facemath_core.models.projector_export import write_projector

VERSION = 1
# Which network each served model is, and the kind of run that would have made it.
_NETWORKS = {
    S.GENERATOR: (build_generator, "gan"),
    S.DISCRIMINATOR: (build_discriminator, "gan"),
    S.VAE_ENCODER: (build_encoder, "vae"),
    S.VAE_DECODER: (build_decoder, "vae"),
    S.ORACLE: (build_oracle, "oracle"),
    S.GAN_ENCODER: (build_gan_encoder, "encoder"),
    S.VAEGAN_ENCODER: (build_encoder, "vaegan"),
    S.VAEGAN_DECODER: (build_generator, "vaegan"),
    S.VAEGAN_DISCRIMINATOR: (build_vaegan_discriminator, "vaegan"),
}


def tiny_config(image_size: int = 32, z_dim: int = 8, z_distribution: str = "uniform") -> ArchConfig:
    """The architecture of the tiny models: the smallest image size facemath makes, 8 filters per layer; the
    oracle judges the attributes of the synthetic faces (`tiny_faces`)."""
    return ArchConfig(
        image_size=image_size, z_dim=z_dim, ngf=8, ndf=8, z_distribution=z_distribution, attribute_names=ATTRIBUTES
    )


def _seeded(model, rng: np.random.Generator):
    """Kernels drawn from `rng` (Keras' own initialisers are not seeded here), N(0, 1 / fan-in): untrained batch
    normalisation does not rescale, so DCGAN's N(0, 0.02) would make every image ~0 whatever z is; this keeps each
    layer's outputs about as large as its inputs, and G(z) varies with z."""
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("kernel"):
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            variable.assign(rng.normal(0.0, fan_in**-0.5, shape).astype(np.float32))
        elif variable.path.endswith("gamma"):  # batch normalisation's scale: DCGAN draws it from N(1, 0.02)
            variable.assign(rng.normal(1.0, 0.02, shape).astype(np.float32))
    return model


def tiny_models(
    folder: str | Path, *, image_size: int = 32, z_dim: int = 8, z_distribution: str = "uniform", seed: int = 0
) -> Path:
    """Write every model (generator, discriminator, VAE, attribute oracle, GAN encoder, VAE-GAN and the projector)
    into the model folder `folder` at version 1, in TF Serving's `<name>/<version>/` layout; returns `folder`. An
    existing complete folder is left as it is (a cache)."""
    folder = Path(folder)
    cfg = tiny_config(image_size, z_dim, z_distribution)
    if all((folder / name / str(VERSION) / "saved_model.pb").is_file() for name in (*S.MODEL_NAMES, S.PROJECTOR)):
        return folder
    rng = np.random.default_rng(seed)
    generator_dir = folder / S.GENERATOR / str(VERSION)
    for name, (build, kind) in _NETWORKS.items():
        target = folder / name / str(VERSION)
        if (target / "saved_model.pb").is_file():
            continue
        # What export writes for a run of this kind; the encoder names the generator it inverts.
        options = {"generator": str(generator_dir)} if name == S.GAN_ENCODER else {}
        record = {"kind": kind, "steps_done": 0, "data": "synthetic (facemath_core.testing)", "options": options}
        # A VAE-GAN's prior is N(0, I) whatever the others' is (models/kinds.py), and its metadata says so.
        model_cfg = replace(cfg, z_distribution="normal") if kind == "vaegan" else cfg
        with atomic_dir(target) as tmp:
            write_saved_model(
                _seeded(build(model_cfg), rng), name, model_cfg, model_metadata(name, model_cfg, record), tmp
            )
    projector = folder / S.PROJECTOR / str(VERSION)
    if not (projector / "saved_model.pb").is_file():
        with atomic_dir(projector) as tmp:
            write_projector(generator_dir, folder / S.DISCRIMINATOR / str(VERSION), tmp, S.PROJECTOR, VERSION)
    return folder


def tiny_faces(folder: str | Path, count: int = 8, *, image_size: int = 32, seed: int = 0) -> Path:
    """`count` synthetic faces in CelebA's layout (PNGs in `img_align_celeba/`, an attribute file with Smiling,
    Male, ...), for projections and `math` expressions over attribute groups; returns `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        write_synthetic_folder(folder, count, seed=seed, size=image_size)
    return folder
