"""`facemath project` and `facemath complete`: find z for images (and fill in their missing pixels)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from facemath_core.projection import PRESETS


def project_command(
    ctx: typer.Context,
    images: Annotated[list[str] | None, typer.Argument(help="Image files or folders of images.")] = None,
    loss_plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--loss-plugin",
            "-l",
            help="Add a loss term NAME[=WEIGHT] (repeatable); contextual=0 drops the default term.",
        ),
    ] = None,
    optimizer: Annotated[str | None, typer.Option(help="Optimizer plugin (default adam).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate: the optimizer's lr parameter.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimisation steps (default 1000).")] = None,
    init: Annotated[
        str, typer.Option(help="Initial z plugin: uniform, normal, encoder (VAE encoder, iGAN's hybrid), ...")
    ] = "uniform",
    restarts: Annotated[int, typer.Option(help="Optimise K starting points per image, keep the best.")] = 1,
    constraint: Annotated[str | None, typer.Option(help="z constraint plugin: clip, stochastic, tanh, none.")] = None,
    preset: Annotated[str | None, typer.Option(help=f"Settings of a paper: {', '.join(PRESETS)}.")] = None,
    mask: Annotated[str, typer.Option(help="Mask plugin: which pixels are known.")] = "full",
    blend: Annotated[str | None, typer.Option(help="Blender plugin for completions (default overlay).")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Plugin parameter NAME.KEY=VALUE, e.g. center.scale=0.3 (repeatable)."),
    ] = None,
    model: Annotated[str, typer.Option(help="Project through the gan generator or the vae decoder.")] = "gan",
    out: Annotated[Path, typer.Option("--out", "-o", help="Result folder.")] = Path("projections"),
    models: Annotated[Path, typer.Option(help="Model base path of the embedded backend.")] = Path("exported_models"),
    seed: Annotated[int, typer.Option(min=0, help="Random seed (initial z, random masks, stochastic clipping).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images optimised together.")] = 64,
    patience: Annotated[int, typer.Option(help="Stop an image after this many steps without improvement.")] = 200,
    no_resize: Annotated[
        bool, typer.Option("--no-resize", help="Refuse images that are not the model's size.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this result folder (with --steps: the new total).")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Use TF Serving at HOST:PORT (or dns:///name:8500, or a comma-separated list) instead of --models."
        ),
    ] = None,
    model_version: Annotated[
        int | None, typer.Option(help="Served model version (default: pin the first one seen).")
    ] = None,
    model_label: Annotated[str | None, typer.Option(help="Served version label, e.g. stable.")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA certificate (PEM) to verify the server.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Client certificate (PEM), for mutual TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Client private key (PEM), for mutual TLS.")] = None,
    timeout: Annotated[float, typer.Option(help="Deadline of each server call, in seconds.")] = 60.0,
    parallel_requests: Annotated[
        int | None,
        typer.Option(
            help="Requests in flight per step (default: one per --server endpoint; the replica count for dns:///)."
        ),
    ] = None,
):
    """Project images onto the generator's z: optimise z so that G(z) matches each image."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from facemath_core.backends import open_backend
    from facemath_core.plugins import load_registry
    from facemath_core.projection import ProjectionConfig, apply_params, parse_loss_options, with_preset
    from facemath_core.projection_job import ProjectionJob, load_inputs, load_resume, resumed_config

    console = Console(stderr=True)
    registry = load_registry(ctx.obj["plugins"])
    if resume is not None:
        _, arrays = load_resume(resume)
        config = resumed_config(arrays, steps)
        inputs_args, out = [str(p) for p in arrays["paths"]], resume
    else:
        if not images:
            raise typer.BadParameter("give image files or folders (or --resume DIR)", param_hint="IMAGES")
        config = with_preset(ProjectionConfig(), preset)
        losses = parse_loss_options(loss_plugin, config.losses, registry)
        opt = optimizer or config.optimizer
        config = replace(
            config,
            losses=losses,
            optimizer=opt,
            optimizer_params=config.optimizer_params if opt == config.optimizer else {},
            steps=config.steps if steps is None else steps,
            init=init,
            restarts=restarts,
            constraint=constraint or config.constraint,
            mask=mask,
            blend=blend or config.blend,
            model=model,
            seed=seed,
            batch_size=batch_size,
            patience=patience,
        )
        config = apply_params(config, param, registry, lr=lr)
        inputs_args = list(images)
    if server is None and (model_version is not None or model_label is not None):
        raise typer.BadParameter("only with --server", param_hint="--model-version/--model-label")
    backend = open_backend(
        str(models),
        server,
        version=model_version,
        label=model_label,
        timeout=timeout,
        tls_ca=tls_ca and str(tls_ca),
        tls_cert=tls_cert and str(tls_cert),
        tls_key=tls_key and str(tls_key),
        in_flight=parallel_requests,
    )
    job = ProjectionJob(backend, registry, config, out, overwrite=overwrite, resuming=resume is not None)
    inputs = load_inputs(inputs_args, job.projector.image_size, resize=not no_resize)
    for path in inputs.resized:
        console.print(
            f"[yellow]warning:[/yellow] {path}: resized to {job.projector.image_size}x"
            f"{job.projector.image_size} (use --no-resize to refuse)",
            highlight=False,
        )
    from facemath_core.projection_job import build_masks

    build_masks(registry, config, inputs.names, job.projector.image_size)  # bad masks fail before any work
    chunks = job.chunks(len(inputs.names))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"projecting {len(inputs.names)} images", total=len(chunks) * config.steps, loss="-")

        def progress(chunk, step, mean):
            bar.update(task, completed=chunk * config.steps + step, loss=f"{mean:.4g}")

        latents = job.run(
            inputs,
            progress=progress,
            resume_from=arrays if resume is not None else None,
            warn=lambda line: console.print(f"[yellow]warning:[/yellow] {line}", highlight=False),
        )
        bar.update(task, completed=len(chunks) * config.steps)
    total, failed = latents.losses["total"], int(latents.failed.sum())
    note = f"; {failed} of {len(latents.names)} failed, see the warnings" if failed else ""
    typer.echo(
        f"projected {len(latents.names)} images into {out} (mean loss {total[~latents.failed].mean():.4g}{note})"
    )


def complete_command(**kwargs):
    """Complete images with missing regions: project onto the known pixels (--mask), then blend G(z) into the
    hole (--blend overlay or poisson)."""
    return project_command(**kwargs)


def _with_default(fn, source, **defaults):
    """Give `fn` the signature of `source` with some defaults changed (typer reads defaults from signatures)."""
    signature = inspect.signature(source, eval_str=True)
    fn.__signature__ = signature.replace(
        parameters=[p.replace(default=defaults.get(p.name, p.default)) for p in signature.parameters.values()]
    )
    return fn


_with_default(complete_command, project_command, mask="center", out=Path("completions"))
