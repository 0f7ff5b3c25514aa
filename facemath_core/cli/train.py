"""`facemath train gan|vae|oracle|encoder|vaegan`: train the models facemath projects with and judges by."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.files import check_apart, check_writable
from facemath_core.base.runtime import import_tensorflow_quietly
from facemath_core.models.architectures import ArchConfig
from facemath_core.models.cards import round_trip
from facemath_core.models.distribute import DEFAULT_CLUSTER_TIMEOUT, check_placement, make_strategy
from facemath_core.models.kinds import KINDS
from facemath_core.models.runs import Placement, TrainOptions
from facemath_core.models.training import train as run_training


class Strategy(str, enum.Enum):
    one = "one"
    mirrored = "mirrored"
    multi_worker = "multi-worker"


class Split(str, enum.Enum):
    train = "train"
    held_out = "held-out"
    all = "all"  # e.g. examples/faces, whose 16 faces are all held out (they are there to be projected)


# One choice per entry of the kinds table: a new model kind is trainable without a change here (`encoder` trains a
# gan_encoder for an exported generator, --generator).
Kind = enum.Enum("Kind", {name: name for name in KINDS}, type=str)


def train_command(
    kind: Annotated[Kind, typer.Argument(help="What to train.")],
    data: Annotated[Path | None, typer.Option(help="Face folder (CelebA layout or plain images).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to create, e.g. runs/gan64.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this run folder from its last checkpoint.")] = None,
    steps: Annotated[
        int | None, typer.Option(help="Total training steps [default: 10000; with --resume: the recorded total].")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step: the global batch, split among the replicas.")] = 64,
    image_size: Annotated[int, typer.Option(help="32, 64 or 128.")] = 64,
    z_dim: Annotated[int, typer.Option(help="Latent dimensions (GAN and VAE).")] = 100,
    z_dist: Annotated[str, typer.Option(help="GAN prior: uniform U(-1,1) or normal N(0,1).")] = "uniform",
    ngf: Annotated[int, typer.Option(help="Generator / decoder width (channels of the last layer).")] = 64,
    ndf: Annotated[int, typer.Option(help="Discriminator / encoder width (channels of the first layer).")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    beta1: Annotated[float, typer.Option(help="Adam beta1 (GAN and VAE; the oracle uses 0.9).")] = 0.5,
    d_lr: Annotated[float | None, typer.Option(help="GAN: separate discriminator learning rate (TTUR).")] = None,
    label_smoothing: Annotated[float, typer.Option(help="GAN: one-sided label smoothing (real label 1-x).")] = 0.0,
    instance_noise: Annotated[float, typer.Option(help="GAN: std of instance noise, decaying to 0.")] = 0.0,
    latent_recon: Annotated[
        float,
        typer.Option(
            min=0.0, help="GAN: weight of an InfoGAN-style term ||Q(G(z)) - z||^2 that keeps z recoverable (0: off)."
        ),
    ] = 0.0,
    spectral_norm: Annotated[bool, typer.Option(help="GAN: spectral normalisation in D instead of BN.")] = False,
    beta: Annotated[float, typer.Option(help="VAE and VAE-GAN: weight of the KL term.")] = 1.0,
    gamma: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="VAE-GAN: weight of the discriminator-feature likelihood against the GAN loss in the decoder's loss.",
        ),
    ] = TrainOptions.gamma,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed repeats a run.")] = 0,
    sample_every: Annotated[int, typer.Option(help="Write a sample grid every N steps.")] = 500,
    checkpoint_every: Annotated[int, typer.Option(help="Save a checkpoint every N steps.")] = 1000,
    strategy: Annotated[
        Strategy, typer.Option(help="one device; mirrored over local GPUs; multi-worker configured by TF_CONFIG.")
    ] = Strategy.one,
    cpu_replicas: Annotated[
        int, typer.Option(min=0, help="mirrored: over N logical CPU devices instead of the GPUs (0: the GPUs).")
    ] = 0,
    mixed_precision: Annotated[
        bool, typer.Option(help="GPU: mixed_float16 compute with float32 weights and dynamic loss scaling.")
    ] = False,
    jit: Annotated[bool, typer.Option(help="GPU: compile the train step with XLA.")] = False,
    cluster_timeout: Annotated[
        float,
        typer.Option(
            help="multi-worker: seconds to wait for every worker of TF_CONFIG to start; then one line names the "
            "missing ones and the run stops."
        ),
    ] = DEFAULT_CLUSTER_TIMEOUT,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a non-empty --out folder (a run there too) by this new run.")
    ] = False,
    split: Annotated[
        Split,
        typer.Option(help="Which faces of --data to train on: the train split, the held-out one, or all of them."),
    ] = Split.train,
    generator: Annotated[
        Path | None, typer.Option(help="encoder: the exported generator to invert, e.g. exported_models/generator.")
    ] = None,
    model_version: Annotated[
        int | None, typer.Option(min=1, help="encoder: the version of --generator [default: its newest].")
    ] = None,
    warm_start: Annotated[
        Path | None,
        typer.Option(help="encoder: start from the Q network of this GAN run (trained with --latent-recon)."),
    ] = None,
):
    """Train KIND on --data into --out, or continue --resume RUN. Ctrl-C saves a checkpoint and stops."""

    if resume is None and (data is None or out is None):
        raise typer.BadParameter("give --data and --out, or --resume RUN", param_hint="--data/--out")
    if resume is not None and overwrite:
        raise typer.BadParameter(
            "--resume continues a run; --overwrite starts one over: choose one", param_hint="--overwrite"
        )
    if not (math.isfinite(cluster_timeout) and cluster_timeout > 0):
        raise typer.BadParameter(f"{cluster_timeout}: a number of seconds > 0", param_hint="--cluster-timeout")
    if (generator is not None or model_version is not None) and kind is not Kind.encoder:
        raise typer.BadParameter(f"only train encoder inverts a generator, not {kind.value}", param_hint="--generator")
    if warm_start is not None and kind is not Kind.encoder:
        raise typer.BadParameter(
            f"only train encoder starts from a GAN run's Q, not {kind.value}", param_hint="--warm-start"
        )
    if kind is Kind.encoder and resume is None and generator is None:
        raise typer.BadParameter("train encoder needs the exported generator to invert", param_hint="--generator")
    for name, value in (
        ("--steps", 1 if steps is None else steps),
        ("--batch-size", batch_size),
        ("--sample-every", sample_every),
        ("--checkpoint-every", checkpoint_every),
    ):
        if value < 1:
            raise typer.BadParameter(f"{value}: must be at least 1", param_hint=name)
    for name, value in (("--latent-recon", latent_recon), ("--gamma", gamma)):
        if not math.isfinite(value):  # click's range check lets nan through
            raise typer.BadParameter(f"{value}: a finite weight", param_hint=name)
    cfg = ArchConfig(
        image_size=image_size, z_dim=z_dim, ngf=ngf, ndf=ndf, z_distribution=z_dist, spectral_norm=spectral_norm
    )
    options = TrainOptions(
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        lr=lr,
        beta1=beta1,
        d_lr=d_lr,
        label_smoothing=label_smoothing,
        instance_noise=instance_noise,
        latent_recon=latent_recon,
        beta=beta,
        gamma=gamma,
        sample_every=sample_every,
        checkpoint_every=checkpoint_every,
        split=split.value,
        generator="" if generator is None else str(generator),
        generator_version=model_version,
        warm_start="" if warm_start is None else str(warm_start),
    )
    run_dir = resume if resume is not None else out
    # With --resume the run's own kind, data and options are used (run.json); only --steps may change.
    data_dir = "" if data is None else str(data)
    if resume is None:
        check_apart(out, [data])  # --out holding --data: --overwrite would delete the faces it trains on
        check_writable(out)
    placement = Placement(strategy.value, cpu_replicas, mixed_precision, jit, cluster_timeout)
    # The strategy first (logical CPUs and collectives need a TensorFlow that has not set up its devices yet),
    # then the quiet import every other command does up front.
    check_placement(placement.strategy, placement.cpu_replicas)  # before TensorFlow: its errors are one line
    import_tensorflow_quietly(
        before_devices=lambda: make_strategy(placement.strategy, placement.cpu_replicas, placement.cluster_timeout)
    )
    record = run_training(
        kind.value,
        data_dir,
        run_dir,
        cfg,
        options,
        resume=resume is not None,
        placement=placement,
        warn=lambda line: typer.echo(f"warning: {line}", err=True),
        overwrite=overwrite,
    )
    typer.echo(
        f"{record['kind']} run {run_dir}: {record['steps_done']} steps, "
        f"{record['wall_seconds'] / 60:.1f} min of training"
    )
    if "held_out_psnr" in record:
        typer.echo(
            f"  held-out {round_trip(record['kind'])} PSNR: {record['held_out_psnr']:.2f} dB "
            f"({record['held_out_images']} faces)"
        )
    for name, accuracy in record.get("held_out_accuracy", {}).items():
        typer.echo(f"  held-out accuracy {name}: {accuracy:.3f}")
