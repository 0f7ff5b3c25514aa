"""`facemath project` and `facemath complete`: find z for images (and fill in their missing pixels).

Both commands take the same options, defined once below; `complete` only changes the defaults of --mask and --out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.files import check_apart
from facemath_core.base.text import plural, shown
from facemath_core.cli.align import AlignOption, FaceOptions, aligned_inputs
from facemath_core.cli.options import (
    ModelSource,
    OverwriteOption,
    option_group,
    with_option_groups,
)
from facemath_core.cli.options import note as print_note
from facemath_core.host.manager import load_registry
from facemath_core.models.source import use_recorded_version
from facemath_core.projection.flags import domain_warnings
from facemath_core.projection.projector import PRESETS
from facemath_core.projection.run import (
    RESUME_FILE,
    ProjectionRun,
    folder_sink,
    load_inputs,
    load_resume,
    resumed_config,
    resumed_inputs,
    resumed_models,
)
from facemath_core.projection.sampling import SAMPLER_PRESETS, SamplingSink, sampling_config
from facemath_core.projection.settings import projection_config
from facemath_core.projection.shards import parse_shard

ImagesArgument = Annotated[list[str] | None, typer.Argument(help="Image files or folders of images.")]
LossPluginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--loss-plugin", "-l", help="Add a loss term NAME[=WEIGHT] (repeatable); contextual=0 drops the default term."
    ),
]
OptimizerOption = Annotated[str | None, typer.Option(help="Optimizer plugin (default adam).")]
LrOption = Annotated[float | None, typer.Option(help="Learning rate: the optimizer's lr parameter.")]
StepsOption = Annotated[int | None, typer.Option(help="Optimisation steps (default 1000).")]
InitOption = Annotated[
    str | None,
    typer.Option(
        help="Initial z plugin: encoder (the model's own encoder: iGAN's hybrid; the default when the model has "
        "one), uniform (the papers' start; the presets' and the default otherwise), normal, ..."
    ),
]
RestartsOption = Annotated[int, typer.Option(help="Optimise K starting points per image, keep the best.")]
ConstraintOption = Annotated[str | None, typer.Option(help="z constraint plugin: clip, stochastic, tanh, none.")]
PresetOption = Annotated[str | None, typer.Option(help=f"Settings of a paper: {', '.join(PRESETS)}.")]
MaskOption = Annotated[str, typer.Option(help="Mask plugin: which pixels are known.")]
BlendOption = Annotated[str | None, typer.Option(help="Blender plugin for completions (default overlay).")]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", help="Plugin parameter NAME.KEY=VALUE, e.g. center.scale=0.3 (repeatable)."),
]
ModelOption = Annotated[
    str, typer.Option(help="Project through the gan generator, the vae decoder or the vaegan (VAE-GAN) decoder.")
]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Result folder.")]
SeedOption = Annotated[int, typer.Option(min=0, help="Random seed (initial z, random masks, stochastic clipping).")]
BatchSizeOption = Annotated[int, typer.Option(help="Images optimised together.")]
PatienceOption = Annotated[int, typer.Option(help="Stop an image after this many steps without improvement.")]
NoResizeOption = Annotated[bool, typer.Option("--no-resize", help="Refuse images that are not the model's size.")]
ResumeOption = Annotated[Path | None, typer.Option(help="Continue this result folder (with --steps: the new total).")]
ShardOption = Annotated[
    str | None,
    typer.Option(
        metavar="K/N",
        help="Project only shard K of N (K from 1) of the inputs, by a hash of each file name; merge the shards "
        "with `facemath latents merge`.",
    ),
]
SamplerOption = Annotated[
    str | None,
    typer.Option(
        help="complete only: after the optimisation, draw --samples z per image from the completion loss's "
        "posterior with this sampler plugin (hmc), each a completion of its own.",
        rich_help_panel="Sampling",
    ),
]
SamplesOption = Annotated[
    int | None,
    typer.Option(help="Samples per image with --sampler (default 8).", rich_help_panel="Sampling"),
]
ParallelRequestsOption = Annotated[
    int | None,
    typer.Option(
        help="Requests in flight per step (default: one per --server endpoint; the replica count for dns:///).",
        rich_help_panel="Model source",
    ),
]


@option_group
class ProjectionOptions:
    """The options of `project`; `complete` takes the same with other defaults for --mask and --out."""

    mask: MaskOption = "full"
    out: OutOption = Path("projections")
    loss_plugin: LossPluginOption = None
    optimizer: OptimizerOption = None
    lr: LrOption = None
    steps: StepsOption = None
    init: InitOption = None
    restarts: RestartsOption = 1
    constraint: ConstraintOption = None
    preset: PresetOption = None
    blend: BlendOption = None
    param: ParamOption = None
    model: ModelOption = "gan"
    seed: SeedOption = 0
    batch_size: BatchSizeOption = 64
    patience: PatienceOption = 200
    no_resize: NoResizeOption = False
    overwrite: OverwriteOption = False
    resume: ResumeOption = None
    parallel_requests: ParallelRequestsOption = None
    shard: ShardOption = None
    align: AlignOption = False
    sampler: SamplerOption = None
    samples: SamplesOption = None


@with_option_groups
def project_command(
    ctx: typer.Context,
    images: ImagesArgument = None,
    options: ProjectionOptions = ProjectionOptions(),
    source: ModelSource = ModelSource(),
    faces: FaceOptions = FaceOptions(),
):
    """Project images onto the generator's z: optimise z so that G(z) matches each image (with --align, each face
    of each photo, aligned to the model's landmark template)."""
    run_projection(ctx, images, options, source, faces)


@with_option_groups
def complete_command(
    ctx: typer.Context,
    images: ImagesArgument = None,
    options: ProjectionOptions = ProjectionOptions(mask="center", out=Path("completions")),
    source: ModelSource = ModelSource(),
    faces: FaceOptions = FaceOptions(),
):
    """Complete images with missing regions: project onto the known pixels (--mask), then blend G(z) into the
    hole (--blend overlay or poisson)."""
    run_projection(ctx, images, options, source, faces)


def run_projection(ctx, images, options: ProjectionOptions, source: ModelSource, faces: FaceOptions) -> None:
    """Both commands' work: the config from the options (or the checkpoint when resuming), the job, a progress
    bar and the summary lines."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    out = options.out
    registry = load_registry(ctx.obj["plugins"])
    source.check()
    chosen_shard = _parse_shard(options.shard)
    sampling, params = _sampling(ctx, options, registry)
    if options.align and chosen_shard is not None:
        raise typer.BadParameter(
            "align the photos first (`facemath align`), then shard the crops", param_hint="--align"
        )
    if options.resume is not None:
        if chosen_shard is not None:
            raise typer.BadParameter("a resumed run keeps the shard it started with: drop it", param_hint="--shard")
        resume_folder, arrays = load_resume(options.resume)
        config = resumed_config(arrays, options.steps)
        inputs_args, out = [str(p) for p in arrays["paths"]], options.resume
    else:
        if not images:
            raise typer.BadParameter("give image files or folders (or --resume DIR)", param_hint="IMAGES")
        config = projection_config(
            registry,
            preset=options.preset,
            loss_plugins=options.loss_plugin,
            params=params,
            optimizer=options.optimizer,
            lr=options.lr,
            steps=options.steps,
            init=options.init,
            restarts=options.restarts,
            constraint=options.constraint,
            mask=options.mask,
            blend=options.blend,
            model=options.model,
            seed=options.seed,
            batch_size=options.batch_size,
            patience=options.patience,
        )
        inputs_args = list(images)
    check_apart(out, inputs_args)  # --overwrite must never delete the images it projects
    backend = source.open(in_flight=options.parallel_requests)
    if options.resume is not None:
        _continue_with_recorded_models(backend, source, resume_folder, arrays)
    run = ProjectionRun(backend, registry, config)
    resumed_shard = options.resume is not None and "shard" in arrays and str(arrays["shard"]) not in ("", "{}")
    if sampling is not None:
        sink = SamplingSink(out, registry.get("sampler", sampling.sampler), sampling, overwrite=options.overwrite)
    else:
        sink = folder_sink(
            out,
            shard=chosen_shard is not None or resumed_shard,
            overwrite=options.overwrite,
            resuming=options.resume is not None,
        )
    for line in run.projector.notes:  # e.g. a third-party loss keeps a server from one request per step
        print_note(line)
    resize, size = not options.no_resize, run.image_size
    if options.resume is not None:
        inputs = resumed_inputs(arrays, size, resize, Path(resume_folder) / RESUME_FILE)
    elif options.align:
        aligner = faces.aligner(registry, faces.template_for(backend, run.projector.model, size))
        inputs, _ = aligned_inputs(aligner, inputs_args)
    else:
        inputs = load_inputs(inputs_args, size, resize=resize, shard=chosen_shard)
    for path in inputs.resized:
        console.print(
            f"[yellow]warning:[/yellow] {escape(shown(path))}: resized to {size}x{size} (use --no-resize to refuse)",
            highlight=False,
            soft_wrap=True,
        )
    prepared = run.prepare(inputs)  # the masks, once: a bad mask fails before any work
    if sampling is not None:
        settings = ", ".join(f"{k}={v}" for k, v in sampling.params.items())
        print_note(f"after the optimisation, {sampling.sampler} ({settings}) draws {sampling.samples} z per image")
    chunks = run.chunks(len(inputs.names))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(
            f"projecting {plural(len(inputs.names), 'image')}", total=len(chunks) * config.steps, loss="-"
        )

        def progress(chunk, step, mean):
            bar.update(task, completed=chunk * config.steps + step, loss=f"{mean:.4g}")

        sink.progress = progress
        result = run.run(
            prepared,
            sink,
            resume_from=arrays if options.resume is not None else None,
            # soft_wrap: one warning is one line, also when stderr is a file (rich would wrap it at 80 columns).
            warn=lambda line: console.print(
                f"[yellow]warning:[/yellow] {escape(shown(line))}", highlight=False, soft_wrap=True
            ),
        )
        latents = result.latents
        done = ~latents.failed
        final = f"{latents.losses['total'][done].mean():.4g}" if done.any() else "-"
        # The bar ends on the summary's number: the mean over images of the final (best) weighted loss.
        bar.update(task, completed=len(chunks) * config.steps, loss=final)
    verb = "completed" if ctx.info_name == "complete" else "projected"
    name = S.model_name(latents.model, getattr(backend, "prefix", ""))
    typer.echo(
        f"{verb} {plural(len(latents.names), 'image')} into {out} with {name} version {latents.model_version} "
        f"({backend.describe()})"
    )
    if inputs.shard:
        typer.echo(
            f"shard {inputs.shard['index']}/{inputs.shard['count']}: {len(latents.names)} of "
            f"{inputs.shard['inputs']} inputs"
            + ("; an empty shard writes a latents.npz with no faces, for the merge" if not latents.names else "")
        )
    for line in domain_warnings(
        latents.names,
        latents.psnr,
        latents.out_of_domain,
        backend.metadata(latents.model),
        name,
        latents.model_version,
    ):
        console.print(f"[yellow]warning:[/yellow] {escape(shown(line))}", highlight=False, soft_wrap=True)
    typer.echo(summary_line(latents, latents.psnr, result.start))
    for line in flagged_lines(latents):
        typer.echo(line)
    if sampling is not None and sink.samples is not None:
        for name, rate in zip(latents.names, sink.samples.acceptance, strict=True):
            shown_rate = "not sampled (its optimisation failed)" if rate != rate else f"acceptance rate {rate:.2f}"
            typer.echo(f"  sampled {shown(name)}: {sampling.samples} samples, {shown_rate}")


def _sampling(ctx, options: ProjectionOptions, registry):
    """--sampler and --samples (complete only) as a SamplingConfig, and the --param values left for the
    projection; (None, every --param) without --sampler. Each misuse is one line, exit 1, before any work."""
    if options.sampler is None:
        if options.samples is not None:
            raise FacemathError(f"--samples {options.samples}: needs --sampler (e.g. --sampler hmc)")
        return None, options.param
    if ctx.info_name != "complete":
        raise FacemathError(
            f"--sampler {options.sampler}: only `facemath complete` samples (a projection has nothing to fill in)"
        )
    for given, option in ((options.resume, "--resume"), (options.shard, "--shard")):
        if given is not None:
            raise FacemathError(f"--sampler {options.sampler}: not with {option} (sample a whole run in one go)")
    preset = options.preset if options.preset in SAMPLER_PRESETS else None
    samples = 8 if options.samples is None else options.samples
    return sampling_config(registry, options.sampler, samples, options.param, preset)


def summary_line(latents, known_psnr, start: str | None = None) -> str:
    """One honest line about the result: how close the known pixels came (PSNR, dB), the loss and what it is, how
    many images failed, and where the search started (`start`: `ProjectionRun.start`). Each part is one entry of
    `parts`, so another count (flagged faces) is one more line."""
    import numpy as np

    done = ~latents.failed
    parts = []
    if known_psnr is not None and done.any():
        values = np.asarray(known_psnr)[done]
        parts.append(f"PSNR of the known pixels mean {values.mean():.1f} dB, worst {values.min():.1f} dB")
    if done.any():
        total = latents.losses["total"][done]
        parts.append(f"final loss mean {total.mean():.4g}, worst {total.max():.4g} (weighted sum of the loss terms)")
    failed = int(latents.failed.sum())
    parts.append(f"{failed} of {len(latents.names)} failed" + (", see the warnings" if failed else ""))
    flagged = getattr(latents, "flagged", None)
    if flagged is not None:
        parts.append(f"{int(np.sum(flagged))} flagged as possible failed projections")
    outside = getattr(latents, "out_of_domain", None)
    if outside is not None:
        parts.append(
            f"{int(np.sum(outside))} out of the model's domain (PSNR below its 1st percentile on held-out faces)"
        )
    if start:
        parts.append(f"started at {start}")
    return "; ".join(parts)


def _continue_with_recorded_models(backend, source, folder, arrays) -> None:
    """A resumed projection goes on with the model versions its checkpoint was made with (a newer export in the
    meantime would otherwise change the objective halfway through); gone versions are an error."""

    explicit = source.model_version is not None or source.label is not None
    path = Path(folder) / RESUME_FILE
    for model, version in resumed_models(path, arrays).items():
        note = use_recorded_version(backend, model, version, str(path), explicit=explicit)
        if note:
            print_note(note)


def flagged_lines(latents) -> list[str]:
    """One line per flagged face, so the outliers are named where the run ends."""
    if latents.flagged is None:
        return []
    return [
        f"  flagged {shown(latents.names[i])}: loss {latents.losses['total'][i]:.4g}, known-pixel PSNR "
        f"{latents.psnr[i]:.1f} dB"
        f" (an outlier among this run's faces; math and analogy skip it unless --include-flagged)"
        for i, flagged in enumerate(latents.flagged)
        if flagged
    ]


def _parse_shard(text: str | None):
    """--shard K/N, or a usage error (exit 2) saying what K/N looks like."""

    if text is None:
        return None
    try:
        return parse_shard(text)
    except FacemathError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
