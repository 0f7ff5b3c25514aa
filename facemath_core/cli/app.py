"""The `facemath` Typer app and its root options (--plugin, --trace-plugins, --debug, --version); the command
modules register on it in `facemath_core.cli`."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Annotated

import typer

from facemath_core.base.runtime import import_tensorflow_quietly
from facemath_core.base.version import __version__
from facemath_core.host.manager import configure

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


# Commands that never touch TensorFlow; every other command imports it once, quietly, up front. `train` does it
# itself, after its tf.distribute strategy is set up (that must come before TensorFlow initialises its devices).
LIGHT_COMMANDS = {"plugins", "data", "info", "train", "latents", None}


# Set by --debug (the callback runs inside app(); the error boundary in `cli.main` reads it afterwards).
state = {"debug": False}


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
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the traceback of an error, and library warnings (also: FACEMATH_DEBUG=1)."),
    ] = False,
):
    """facemath: GAN projection, completion and face arithmetic."""

    if debug:
        state["debug"] = True
        warnings.resetwarnings()
        logging.getLogger("tensorflow").setLevel(logging.NOTSET)
    ctx.obj = {"plugins": list(plugin or [])}
    configure(ctx.obj["plugins"], trace=trace_plugins)
    if ctx.invoked_subcommand not in LIGHT_COMMANDS:
        import_tensorflow_quietly()
