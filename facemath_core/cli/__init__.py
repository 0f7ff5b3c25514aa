"""The `facemath` command line: one module per command group, joined here."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from facemath_core import __version__
from facemath_core.errors import FacemathError

# TensorFlow's C++ start-up chatter would bury the one line a user needs to read.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    name="facemath",
    help="Math on faces with deep generative models: project faces into a GAN's z-space, complete them, "
    "and do arithmetic on them.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
)


# Commands that never touch TensorFlow; every other command imports it once, quietly, up front.
LIGHT_COMMANDS = {"plugins", "data", None}


def _version(value: bool):
    if value:
        typer.echo(f"facemath {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    plugin: Annotated[
        list[str] | None,
        typer.Option("--plugin", help="Also load this plugin: a module (pkg.mod) or a .py file. Repeatable."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    trace_plugins: Annotated[
        bool,
        typer.Option("--trace-plugins", envvar="FACEMATH_TRACE_PLUGINS", help="Show every plugin hook call on stderr."),
    ] = False,
):
    """facemath: GAN projection, completion and face arithmetic."""
    from facemath_core.plugins import configure

    ctx.obj = {"plugins": list(plugin or [])}
    configure(ctx.obj["plugins"], trace=trace_plugins)
    if ctx.invoked_subcommand not in LIGHT_COMMANDS:
        from facemath_core.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()


def _register_commands() -> None:
    from facemath_core.cli import attributes, compare, data, export, latents, math, plugins, project, serving, train

    app.command("project", no_args_is_help=True)(project.project_command)
    app.command("complete", no_args_is_help=True)(project.complete_command)
    app.command("encode", no_args_is_help=True)(latents.encode_command)
    app.command("render", no_args_is_help=True)(latents.render_command)
    app.command("interpolate", no_args_is_help=True)(latents.interpolate_command)
    app.command("math", no_args_is_help=True)(math.math_command)
    app.command("analogy", no_args_is_help=True)(math.analogy_command)
    app.command("attributes", no_args_is_help=True)(attributes.attributes_command)
    app.command("compare", no_args_is_help=True)(compare.compare_command)
    app.command("plugins")(plugins.plugins_command)
    app.add_typer(data.app, name="data")
    app.command("train", no_args_is_help=True)(train.train_command)
    app.command("export", no_args_is_help=True)(export.export_command)
    app.command("serve")(serving.serve_command)
    app.command("deploy")(serving.deploy_command)


_register_commands()


def err(message: str) -> None:
    """One red line on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {message}", markup=True)


def main() -> None:
    try:
        app()
    except FacemathError as exc:
        err(str(exc).replace("[", r"\["))
        sys.exit(getattr(exc, "exit_code", 1))
