"""Command-line options shared by several commands, defined once as typer `Annotated` types and option groups.

An option group is a dataclass whose fields are options; a command takes it as one parameter (`source:
ModelSource`) and `@with_option_groups` spreads its fields into the command line, the way click users stack a
shared option decorator. The model-source group (`--models` or `--server`, `--model-version`, `--label`, TLS,
`--timeout`) is taken by every command that runs a model; `ModelSource.open` turns it into a backend through
`facemath_core.serving.backends.open_backend`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base import signatures as S
from facemath_core.host.backend import Backend
from facemath_core.models.source import resolve_models, use_recorded_version
from facemath_core.serving.backends import open_backend

SOURCE = "Model source"  # the help panel that groups the model-source options

ModelsOption = Annotated[
    Path | None,
    typer.Option(
        "--models",
        help="Model base path (<name>/<version>/) run in-process. Default: $FACEMATH_MODELS, else "
        "./exported_models if it exists, else the models installed with facemath.",
        rich_help_panel=SOURCE,
    ),
]
ServerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--server",
        help="Use TF Serving at HOST:PORT instead of --models; repeat (or comma-separate) for round robin across "
        "replicas, or dns:///NAME:PORT for every address DNS returns.",
        rich_help_panel=SOURCE,
    ),
]
ModelVersionOption = Annotated[
    int | None,
    typer.Option(
        "--model-version",
        min=1,
        help="Run this model version. Default: the newest (with --server: the first one served, pinned for the "
        "run); latents decode with the version recorded in them.",
        rich_help_panel=SOURCE,
    ),
]
LabelOption = Annotated[
    str | None,
    typer.Option(
        "--label", "--model-label", help="Served version label, e.g. stable (--server only).", rich_help_panel=SOURCE
    ),
]
TlsCaOption = Annotated[
    Path | None, typer.Option("--tls-ca", help="CA certificate (PEM) to verify the server.", rich_help_panel=SOURCE)
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option("--tls-cert", help="Client certificate (PEM), for mutual TLS.", rich_help_panel=SOURCE),
]
TlsKeyOption = Annotated[
    Path | None,
    typer.Option("--tls-key", help="Client private key (PEM), for mutual TLS.", rich_help_panel=SOURCE),
]
TlsServerNameOption = Annotated[
    str | None,
    typer.Option(
        "--tls-server-name",
        help="Name the server's certificate must carry, when it differs from HOST.",
        rich_help_panel=SOURCE,
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=0.001, help="Deadline of each server call, in seconds.", rich_help_panel=SOURCE),
]

# Options of the arithmetic commands (math, analogy, attributes).
LatentsOption = Annotated[
    list[Path],
    typer.Option("--latents", help="latents.npz from `project` or `encode`; repeat to join files of one model."),
]
AttributesOption = Annotated[
    Path | None,
    typer.Option(
        "--attributes",
        help="An attribute file (list_attr_celeba.txt format) or a folder holding one; "
        "default: the one next to the latents' images.",
    ),
]
OperatorParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="Operator parameter NAME.KEY=VALUE (repeatable); `facemath plugins --kind operator` lists them.",
    ),
]
OverwriteOption = Annotated[bool, typer.Option(help="Replace an existing --out folder.")]
FileOverwriteOption = Annotated[bool, typer.Option(help="Replace an existing --out file.")]


def deprecated_alias(old_value, new_value, old: str, new: str):
    """The value of an option renamed from `old` to `new`: the old spelling still works for one release, with a
    one-line note."""
    if old_value is None:
        return new_value
    typer.echo(f"note: {old} is deprecated here and will be removed in the next release; use {new}", err=True)
    return old_value


IncludeFlaggedOption = Annotated[
    bool,
    typer.Option(
        "--include-flagged", help="Use faces flagged as failed projections in groups and attr() (skipped by default)."
    ),
]


def option_group(cls):
    """Marks a dataclass as an option group: its fields (typer `Annotated` types with defaults) become options of
    every command that takes the dataclass as a parameter (see `with_option_groups`)."""
    cls = dataclass(frozen=True)(cls)
    cls.__option_group__ = True
    return cls


def with_option_groups(command):
    """The command with each option-group parameter spread into its fields, so typer sees plain options; the
    command itself still receives one dataclass per group. Typer reads `__signature__`, which is why the wrapper
    carries the spread signature (all keyword-only: typer passes every option by name)."""
    hints = typing.get_type_hints(command, include_extras=True)
    parameters, groups = [], {}
    for parameter in inspect.signature(command).parameters.values():
        kind = hints.get(parameter.name, parameter.annotation)
        if not getattr(kind, "__option_group__", False):
            parameters.append(parameter.replace(annotation=kind, kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        fields = dataclasses.fields(kind)
        field_hints = typing.get_type_hints(kind, include_extras=True)
        groups[parameter.name] = (kind, [field.name for field in fields])
        # The parameter's default instance gives the defaults, so two commands can share a group and differ in a
        # default (`complete` is `project` with another --mask and --out).
        defaults = parameter.default if isinstance(parameter.default, kind) else kind()
        parameters += [
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=getattr(defaults, field.name),
                annotation=field_hints[field.name],
            )
            for field in fields
        ]

    @functools.wraps(command)
    def spread(**options):
        for name, (kind, fields) in groups.items():
            options[name] = kind(**{field: options.pop(field) for field in fields})
        return command(**options)

    spread.__signature__ = inspect.Signature(parameters)
    spread.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return spread


@option_group
class ModelSource:
    """The model-source options of one command line."""

    models: ModelsOption = None
    server: ServerOption = None  # one or more HOST:PORT; several are used round robin
    model_version: ModelVersionOption = None
    label: LabelOption = None
    tls_ca: TlsCaOption = None
    tls_cert: TlsCertOption = None
    tls_key: TlsKeyOption = None
    tls_server_name: TlsServerNameOption = None
    timeout: TimeoutOption = 60.0

    def check(self) -> None:
        """Combinations that cannot work, refused before any model is loaded."""
        tls = {"--tls-ca": self.tls_ca, "--tls-cert": self.tls_cert, "--tls-key": self.tls_key}
        tls["--tls-server-name"] = self.tls_server_name
        if self.server and self.models is not None and not Backend.plugin_scheme(",".join(self.server)):
            # A plugin's target (kserve://, a cache over a local folder) may want both; TF Serving never does.
            raise typer.BadParameter("give --models or --server, not both", param_hint="--server")
        if not self.server:
            if self.label is not None:
                raise typer.BadParameter("version labels live on a server: only with --server", param_hint="--label")
            given = [name for name, value in tls.items() if value is not None]
            if given:
                raise typer.BadParameter("only with --server", param_hint=given[0])
        if self.model_version is not None and self.label is not None:
            raise typer.BadParameter("give one or the other", param_hint="--model-version/--label")
        if self.tls_server_name is not None and self.tls_ca is None and self.tls_cert is None:
            raise typer.BadParameter("a name to check needs TLS: add --tls-ca", param_hint="--tls-server-name")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise typer.BadParameter("mutual TLS needs both", param_hint="--tls-cert/--tls-key")

    def open(self, **extra):
        """The backend the plugins choose: TF Serving for --server, else the embedded backend over the resolved
        model folder. It is closed when the command ends (the command line's context closes it)."""

        self.check()
        if self.server:
            target = ",".join(self.server)
            options = dict(version=self.model_version, label=self.label, timeout=self.timeout)
            options.update(
                tls_ca=_text(self.tls_ca), tls_cert=_text(self.tls_cert), tls_key=_text(self.tls_key), **extra
            )
            if self.tls_server_name is not None:
                options["tls_server_name"] = self.tls_server_name
            # The hook gets the model folder too (a plugin's backend may use it): --models checked here, the
            # default resolved by open_backend.
            models = None if self.models is None else resolve_models(self.models).path
            return closed_at_exit(open_backend(models, server=target, **options))
        backend = closed_at_exit(open_backend(resolve_models(self.models).path, None, version=self.model_version))
        if self.model_version is not None:
            # Like a server's model_spec.version: every model at this version.
            for model in (*S.MODEL_NAMES, *S.COMPOSITE_NAMES):
                if backend.available_versions(model):
                    backend.use_version(model, self.model_version)
        return backend

    def open_for(self, latents, origin: str, warn):
        """The backend, set to decode `latents` with the model version recorded in them."""

        backend = self.open()
        explicit = self.model_version is not None or self.label is not None  # asked for on purpose: it wins
        note = use_recorded_version(backend, latents.model, latents.model_version, origin, explicit=explicit)
        if note:
            warn(note)
        return backend


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _current_context():
    """The click context of the command being run, or None (a library call)."""
    try:
        from typer._click.globals import get_current_context  # typer >= 0.16 vendors click (not a facemath module)
    except ImportError:
        from click import get_current_context  # older typer: click itself
    return get_current_context(silent=True)


def closed_at_exit(backend):
    """Close the backend when the command ends, however it ends: the command line's context calls `close()` as
    it closes (click's `call_on_close`). A close that fails is a warning: the command's own outcome stands."""
    ctx = _current_context()
    if ctx is not None:

        def close() -> None:
            try:
                backend.close()
            except Exception as exc:
                typer.echo(f"warning: {backend.describe()}: close() failed: {type(exc).__name__}: {exc}", err=True)

        ctx.call_on_close(close)
    return backend


def latents_origin(latents: list[Path]) -> str:
    """How notes and errors name the --latents files."""
    return ", ".join(str(p) for p in latents)


def note(line: str) -> None:
    """One note line on stderr (not an error: the command goes on)."""
    typer.echo(f"note: {line}", err=True)
