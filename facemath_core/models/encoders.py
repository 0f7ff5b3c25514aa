"""Which encoder inverts which decoder, and the checks that they belong together.

`--init encoder` and the in-domain loss use the encoder of the model projected onto: the `gan_encoder` trained for
this generator version (`facemath train encoder`), or the `vae_encoder` (`vaegan_encoder`) of the VAE's (VAE-GAN's)
own run. An encoder trained
for another generator, or another version of it, would start the search at an arbitrary z (the very thing issue 14
found wrong with the VAE encoder as a GAN init), so it is refused. Reading side only: metadata, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.models.architectures import ArchConfig
from facemath_core.models.layout import existing_versions, read_metadata
from facemath_core.models.runs import has_checkpoint, read_run

# The decoder projected onto -> its encoder (named in signatures.py, beside the model names).
ENCODER_OF = S.ENCODER_OF


def resolve_generator(path: str | Path, version: int | None = None) -> Path:
    """The version folder of `--generator PATH` (a model folder `<base>/<name>` or one of its version folders)."""
    path = Path(path)
    if (path / "saved_model.pb").is_file() and path.name.isdigit():
        if version is not None and int(path.name) != version:
            raise FacemathError(f"--generator {path}: is version {path.name}, but --model-version {version} was given")
        return path.resolve()
    versions = existing_versions(path)
    if not versions:
        raise FacemathError(f"--generator {path}: no exported model there (expected {path}/<version>/saved_model.pb)")
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        raise FacemathError(f"--model-version {chosen}: {path} has no such version (has {versions})")
    return (path / str(chosen)).resolve()


def generator_for_training(cfg, options):
    """`facemath train encoder`: the encoder's architecture takes the image size, z size and prior of the generator
    it inverts (only its width, --ndf, is the user's); options.generator becomes the exact version folder."""

    if not options.generator:
        raise FacemathError("train encoder: give --generator, the exported generator to invert")
    version_dir = resolve_generator(options.generator, options.generator_version)
    metadata = read_metadata(version_dir)
    if metadata.get("family") != "gan" or "z_dim" not in metadata:
        raise FacemathError(
            f"--generator {version_dir}: not an exported GAN generator (family {metadata.get('family')!r})"
        )
    cfg = ArchConfig(
        image_size=metadata["image_size"],
        z_dim=metadata["z_dim"],
        z_distribution=metadata["z_distribution"],
        ngf=cfg.ngf,
        ndf=cfg.ndf,
    )
    return cfg, replace(options, generator=str(version_dir), generator_version=int(version_dir.name))


def warm_start_for_training(cfg, options):
    """`train encoder --warm-start RUN`: E starts from the Q network of the GAN run trained with --latent-recon
    (InfoGAN's head, the encoder's shape, already trained with G to map G(z) back to z). Q must fit the generator
    being inverted (image size, z size and prior); E takes Q's width. Checked before any training starts."""

    if not options.warm_start:
        return cfg, options

    where = f"--warm-start {options.warm_start}"
    try:
        record = read_run(options.warm_start)
    except FacemathError as error:
        raise FacemathError(f"--warm-start: {error}") from None
    arch = record.get("arch", {})
    if record.get("kind") != "gan" or not record.get("options", {}).get("latent_recon"):
        raise FacemathError(f"{where}: not a GAN run trained with --latent-recon, so it has no Q network to start from")
    for key in ("image_size", "z_dim", "z_distribution"):
        if arch.get(key) != getattr(cfg, key):
            raise FacemathError(
                f"{where}: its Q has {key} {arch.get(key)}, the generator inverted has {getattr(cfg, key)}"
            )
    if not has_checkpoint(options.warm_start):
        raise FacemathError(f"{where}: the run has no checkpoint yet")
    cfg = ArchConfig(**{**cfg.to_dict(), "ndf": arch["ndf"]})
    return cfg, replace(options, warm_start=str(Path(options.warm_start).resolve()))


def inverted_generator(options: dict) -> dict | None:
    """What a gan_encoder's metadata says it inverts, {name, version}, from its run's options (None for other
    kinds): the generator's folder name and version, as `check_encoder` compares them."""
    version_dir = Path(options.get("generator") or "")
    if not version_dir.name.isdigit():
        return None
    return {"name": version_dir.parent.name, "version": int(version_dir.name)}


def check_encoder(backend, decoder: str, option: str) -> None:
    """Refuse (one line naming `option`) an encoder that was not trained for the decoder the backend runs."""
    encoder = ENCODER_OF[decoder]
    backend.require(encoder)
    meta, decoder_meta = backend.metadata(encoder), backend.metadata(decoder)
    version = backend.version(decoder)
    if decoder == S.GENERATOR:
        inverts = meta.get("generator") or {}
        wanted = decoder_meta.get("model", decoder)
        if inverts.get("name") != wanted or inverts.get("version") != version:
            raise FacemathError(
                f"{option}: {encoder} version {backend.version(encoder)} was trained for "
                f"{inverts.get('name', 'an unnamed generator')} version {inverts.get('version', '?')}, not the "
                f"{wanted} version {version} projected onto; train one for it (facemath train encoder --generator)"
            )
        return
    # A VAE's (or VAE-GAN's) encoder and decoder come from one run and one checkpoint.
    ours, theirs = meta.get("training") or {}, decoder_meta.get("training") or {}
    if (ours.get("run"), ours.get("checkpoint")) != (theirs.get("run"), theirs.get("checkpoint")):
        raise FacemathError(
            f"{option}: {encoder} version {backend.version(encoder)} comes from {ours.get('run')} "
            f"{ours.get('checkpoint')}, and {decoder} version {version} from {theirs.get('run')} "
            f"{theirs.get('checkpoint')}; export them from one run"
        )
