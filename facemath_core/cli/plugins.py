"""`facemath plugins`: everything the installed and named plugins provide, what could not be loaded and why, and
`--check`: every contract of the installed components, run as a projection runs them, in seconds."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from facemath_core.base.errors import FacemathError, PluginError
from facemath_core.base.runtime import import_tensorflow_quietly
from facemath_core.base.text import plural
from facemath_core.cli.options import closed_at_exit
from facemath_core.host.components import HOOK_OF_KIND, Component
from facemath_core.host.contracts import Setting, check_component
from facemath_core.host.manager import Registry, load_registry
from facemath_core.models.architectures import z_bound
from facemath_core.models.source import resolve_models
from facemath_core.serving.backends import open_backend

BACKEND = "backend"
KINDS = [*HOOK_OF_KIND, BACKEND]


def _details(described: dict) -> str:
    """What a user choosing the component needs beyond its help and parameters."""
    parts = []
    if "default_weight" in described:
        parts.append(f"weight {described['default_weight']:g}")
    if described.get("needs_discriminator"):
        parts.append("needs the discriminator")
    if "arity" in described:
        arity = described["arity"]
        parts.append("any number of arguments" if arity is None else plural(arity, "argument"))
    if described.get("needs_encoder"):
        parts.append("needs the model's encoder (gan_encoder / vae_encoder)")
    if described.get("needs_models"):
        parts.append(f"needs {', '.join(described['needs_models'])}")
    if described.get("reparametrises"):
        parts.append("reparametrises z")
    return "; ".join(parts)


_SIGNS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _parameter(key: str, schema: dict) -> str:
    """`form=nonsaturating (one of nonsaturating, saturating): -log D(G(z)) ...`: default, what else it takes,
    and its help, as declared."""
    text = f"{key}={schema['default']}"
    limits = [f"one of {', '.join(map(str, schema['choices']))}"] if "choices" in schema else []
    limits += [f"{sign} {schema[bound]:g}" for bound, sign in _SIGNS.items() if bound in schema]
    if limits:
        text += f" ({', '.join(limits)})"
    if schema.get("help"):
        text += f": {schema['help']}"
    return text


def _backends(manager) -> list[dict]:
    """The implementations of the backend hook, in the order pluggy tries them."""
    out = []
    for impl in reversed(manager.hook.facemath_open_backend.get_hookimpls()):
        doc = (getattr(impl.plugin, "__doc__", None) or "").strip().splitlines()
        provider = manager.provider_of(impl.plugin_name)
        out.append(
            {
                "kind": BACKEND,
                "name": impl.plugin_name,
                "help": doc[0] if doc else "",
                "params": {},
                "schema": {},
                "order": "tryfirst" if impl.tryfirst else "trylast" if impl.trylast else "",
                "provider": str(provider),
                "version": provider.version,
            }
        )
    return out


def _selected(component: Component | dict, names: list[str]) -> bool:
    """Whether NAMES pick this component: its name, its plugin (entry point or `--plugin`), or its distribution."""
    if not names:
        return True
    if isinstance(component, dict):
        return component["name"] in names
    provider = component.provider
    keys = {component.name, getattr(provider, "plugin", ""), getattr(provider, "distribution", "")}
    return bool(keys & set(names))


def plugins_command(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Only these components, plugins (entry points, --plugin) or distributions."),
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(KINDS)}.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (a list of objects) instead of tables.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Run every contract of each component (static and run time, as a projection checks them) and "
            "report each; exit 1 if any fails.",
        ),
    ] = False,
    models: Annotated[
        Path | None,
        typer.Option(
            "--models", help="With --check: shape the check inputs like these models (default: the usual rule)."
        ),
    ] = None,
):
    """List every loss term, optimizer, operator, mask, blender, z initialiser, z constraint, face detector,
    sampler and backend: help
    line, parameters (default, choices or range, help), default weight, discriminator need, arity, and the
    distribution and version that provide it. Plugins that could not be loaded are listed with the reason, and the
    command then exits 1."""
    from rich.console import Console
    from rich.table import Table

    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"{kind!r}; choose {', '.join(KINDS)}", param_hint="--kind")
    names = list(names or [])
    registry = load_registry(ctx.obj["plugins"], strict=False)
    kinds = [kind] if kind else KINDS
    # Not a terminal (a pipe, a file): no wrapping or truncation at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 10_000, highlight=False)
    if check:
        results = _run_checks(registry, [k for k in kinds if k != BACKEND], names, models)
        failed = [r for r in results if r["result"] == "failed"]
        if as_json:
            typer.echo(json.dumps(results + [f.describe() for f in registry.failures], indent=2, default=str))
        else:
            _print_checks(console, Table, results)
            _print_failures(console, Table, registry)
        if failed or registry.failures:
            raise FacemathError(
                f"{plural(len(failed), 'component')} failed a contract"
                + (f", {plural(len(registry.failures), 'plugin')} could not be loaded" if registry.failures else "")
                + " (listed above)"
            )
        return
    listed = {
        each: [
            item
            for item in (_backends(registry.manager) if each == BACKEND else registry.all(each))
            if _selected(item, names)
        ]
        for each in kinds
    }
    listed = {each: [i if isinstance(i, dict) else i.describe() for i in items] for each, items in listed.items()}
    if as_json:
        items = [item for each in kinds for item in listed[each]]
        typer.echo(json.dumps(items + [f.describe() for f in registry.failures], indent=2, default=str))
    else:
        for each in kinds:
            hook = "facemath_open_backend" if each == BACKEND else HOOK_OF_KIND[each]
            table = Table(title=f"{each} ({hook})", title_justify="left", show_edge=False)
            table.add_column("name", style="bold", no_wrap=True)
            table.add_column("help")
            table.add_column("parameters (default, choices or range: help)")
            table.add_column("details")
            table.add_column("provided by", style="dim", no_wrap=True)
            for item in listed[each]:
                params = "; ".join(_parameter(k, s) for k, s in item["schema"].items())
                details = item.get("order", "") if each == BACKEND else _details(item)
                table.add_row(item["name"], item["help"], params, details, item["provider"], end_section=False)
            if not listed[each]:
                table.add_row("[dim](none)[/dim]", "", "", "", "")
            console.print(table)
            console.print()
        _print_failures(console, Table, registry)
    if registry.failures:
        more = len(registry.failures) - 1
        raise FacemathError(
            registry.failures[0].message() + (f" ({more} more: see 'could not load' above)" if more else "")
        )


def _print_failures(console, table_class, registry: Registry) -> None:
    if not registry.failures:
        return
    table = table_class(title="could not load", title_justify="left", show_edge=False)
    table.add_column("plugin", style="bold", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("error")
    for failure in registry.failures:
        distribution = f"{failure.distribution} {failure.version or ''}".strip() if failure.distribution else ""
        table.add_row(failure.plugin or "(hook wrapper)", distribution or failure.provider, failure.message())
    console.print(table)
    console.print()


# --- --check --------------------------------------------------------------------------------------------------


def _setting(registry: Registry, models: Path | None) -> tuple[Setting, str]:
    """Check inputs shaped like the models a run would use (the usual resolution rule, or --models); without
    models, a small generic shape, and the checks that need models are skipped."""
    try:
        folder = resolve_models(models).path
    except FacemathError:
        if models is not None:
            raise
        return Setting(), "generic inputs (no models found): 32x32 images, z of 8; checks that need models are skipped"
    import_tensorflow_quietly()
    backend = closed_at_exit(open_backend(folder, None, manager=registry.manager))
    meta = backend.metadata("generator")
    setting = Setting(meta["image_size"], meta["z_dim"], z_bound(meta["z_distribution"]), backend, "generator")
    size = meta["image_size"]
    return setting, f"inputs shaped like {backend.describe()}: {size}x{size} images, z of {meta['z_dim']}"


def _run_checks(registry: Registry, kinds: list[str], names: list[str], models: Path | None) -> list[dict]:
    setting, shape = _setting(registry, models)
    import_tensorflow_quietly()
    typer.echo(f"checking with {shape}", err=True)
    results = []
    for kind in kinds:
        for component in registry.all(kind):
            if not _selected(component, names):
                continue
            started = time.perf_counter()
            result, message = "ok", ""
            needs_models = kind == "init" and (component.needs_models or component.needs_encoder)
            try:
                if setting.backend is None and needs_models:
                    result, message = "skipped", "needs models (give --models)"
                else:
                    check_component(component, setting=setting)
            except PluginError as exc:
                result, message = "failed", str(exc)
            except FacemathError as exc:  # the plugin's own refusal of the check inputs (a mask file, say)
                result, message = "skipped", f"refused the check inputs: {exc}"
            results.append(
                {
                    "kind": kind,
                    "name": component.name,
                    "provider": str(component.provider),
                    "version": getattr(component.provider, "version", None),
                    "result": result,
                    "message": message,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
    return results


def _print_checks(console, table_class, results: list[dict]) -> None:
    table = table_class(title="contract checks", title_justify="left", show_edge=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("provided by", style="dim", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("seconds", justify="right")
    table.add_column("why")
    for r in results:
        style = {"ok": "green", "failed": "red", "skipped": "yellow"}[r["result"]]
        result = f"[{style}]{r['result']}[/{style}]"
        table.add_row(r["kind"], r["name"], r["provider"], result, f"{r['seconds']:.2f}", r["message"])
    console.print(table)
    console.print()
