"""The `facemath` command line: one module per command group, joined here, and the error boundary (`main`)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from facemath_core.base.errors import EXIT_ERROR, EXIT_INTERNAL, FacemathError, describe_os_error
from facemath_core.cli import (
    align,
    attributes,
    compare,
    data,
    edit,
    export,
    info,
    latents,
    math,
    plugins,
    project,
    serving,
    studio,
    train,
)
from facemath_core.cli.app import app, state

__all__ = ["app", "main"]

app.command("project", no_args_is_help=True)(project.project_command)
app.command("complete", no_args_is_help=True)(project.complete_command)
app.command("encode", no_args_is_help=True)(latents.encode_command)
app.command("align", no_args_is_help=True)(align.align_command)
app.command("edit", no_args_is_help=True)(edit.edit_command)
app.command("render", no_args_is_help=True)(latents.render_command)
app.command("interpolate", no_args_is_help=True)(latents.interpolate_command)
app.command("math", no_args_is_help=True)(math.math_command)
app.command("analogy", no_args_is_help=True)(math.analogy_command)
app.command("attributes", no_args_is_help=True)(attributes.attributes_command)
app.command("compare", no_args_is_help=True)(compare.compare_command)
app.command("plugins")(plugins.plugins_command)
app.command("info")(info.info_command)
app.add_typer(data.app, name="data")
app.add_typer(latents.app, name="latents")
app.command("train", no_args_is_help=True)(train.train_command)
app.command("export", no_args_is_help=True)(export.export_command)
app.command("serve")(serving.serve_command)
app.command("deploy")(serving.deploy_command)
app.command("ssl-config")(serving.ssl_config_command)
app.command("studio")(studio.studio_command)


def err(message: str, label: str = "error") -> None:
    """One red line on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]{label}:[/red] {message}", markup=True)


def _debugging() -> bool:
    return state["debug"] or os.environ.get("FACEMATH_DEBUG", "") not in ("", "0")


def _one_line(text: str) -> str:
    """A message as one line, safe for rich markup."""
    return " ".join(str(text).split()).replace("[", r"\[")


def _summary(exc: BaseException) -> str:
    """TYPE: message, from the last line of a multi-line message (TensorFlow puts the staged code's frames first
    and the original error last)."""
    name = type(exc).__name__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if last.startswith(f"{name}: ") else f"{name}: {last}".rstrip(": ")


def _click_exceptions():
    """The command-line parser's error types (typer vendors click since 0.16; older versions use click's own)."""
    try:
        import typer._click.exceptions as exceptions
    except ImportError:
        import click.exceptions as exceptions
    return exceptions.ClickException, getattr(exceptions, "NoArgsIsHelpError", ())


def _plain_help(command):
    """Help without type tags on plain flags: `--raw` takes no value, so `<bool>` beside it only misleads, and a
    repeatable option reads better as TEXT than as `<list[str]>`."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif getattr(param, "multiple", False) and param.param_type_name == "option" and param.metavar is None:
            param.metavar = "TEXT"
        elif param.param_type_name == "argument" and param.nargs != 1:
            param.display_type_rich = lambda ctx: None  # "images..." already says it takes several
    if hasattr(command, "get_help_option"):
        make_help = command.get_help_option

        def help_option(ctx, make_help=make_help):
            option = make_help(ctx)
            if option is not None:
                option.metavar = ""
            return option

        command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)
    return command


def main() -> None:
    """The error boundary: every failure leaves as one `error:` line and an exit code (docs/errors.md)."""
    import traceback

    if not _debugging():
        # numpy and TensorFlow warnings (RuntimeWarning, DeprecationWarning) are for developers; the user gets
        # our own `warning:` lines. Only the CLI process silences them: the library and the tests still see them.
        warnings.simplefilter("ignore")
        # TensorFlow's Python-side notices (retracing, deprecations) go through this logger.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    ClickException, NoArgsIsHelpError = _click_exceptions()

    try:
        code = _plain_help(typer.main.get_command(app))(prog_name="facemath", standalone_mode=False)
        sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)
    except NoArgsIsHelpError as exc:
        exc.show()  # the command's help, as `-h` would show it
        sys.exit(exc.exit_code)
    except ClickException as exc:
        # A malformed command line (unknown option, a value of the wrong type): one line too, exit 2.
        hint = f" (see '{exc.ctx.command_path} -h')" if getattr(exc, "ctx", None) is not None else ""
        err(_one_line(exc.format_message()) + hint)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err("aborted")
        sys.exit(EXIT_ERROR)
    except FacemathError as exc:
        if _debugging():
            traceback.print_exc()
        err(_one_line(exc))
        sys.exit(getattr(exc, "exit_code", EXIT_ERROR))
    except MemoryError:
        if _debugging():
            traceback.print_exc()
        err("out of memory; use fewer images, frames or steps")
        sys.exit(EXIT_ERROR)
    except OSError as exc:
        # A path the user named cannot be read or written: the environment, not a bug.
        if _debugging():
            traceback.print_exc()
        err(_one_line(describe_os_error(exc)))
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if _debugging():
            traceback.print_exc()
        err(_one_line(f"{_summary(exc)}; rerun with --debug for the traceback"), "internal error")
        sys.exit(EXIT_INTERNAL)
