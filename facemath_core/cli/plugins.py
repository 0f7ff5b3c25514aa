"""`facemath plugins`: everything the installed and named plugins provide."""

from __future__ import annotations

from typing import Annotated

import typer

from facemath_core.host.components import HOOK_OF_KIND
from facemath_core.host.manager import load_registry

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
        parts.append("any number of arguments" if arity is None else f"{arity} argument{'s' * (arity != 1)}")
    if described.get("needs_encoder"):
        parts.append("needs the model's encoder (gan_encoder / vae_encoder)")
    if described.get("needs_models"):
        parts.append(f"needs {', '.join(described['needs_models'])}")
    if described.get("reparametrises"):
        parts.append("reparametrises z")
    return "; ".join(parts)


def _backends(manager) -> list[dict]:
    """The implementations of the backend hook, in the order pluggy tries them."""
    out = []
    for impl in reversed(manager.hook.facemath_open_backend.get_hookimpls()):
        doc = (getattr(impl.plugin, "__doc__", None) or "").strip().splitlines()
        out.append(
            {
                "kind": BACKEND,
                "name": impl.plugin_name,
                "help": doc[0] if doc else "",
                "params": {},
                "order": "tryfirst" if impl.tryfirst else "trylast" if impl.trylast else "",
                "provider": manager.providers.get(impl.plugin_name, ""),
            }
        )
    return out


def plugins_command(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(KINDS)}.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (a list of objects) instead of tables.")] = False,
):
    """List every loss term, optimizer, operator, mask, blender, z initialiser, z constraint and backend: help
    line, parameters with their defaults, default weight, discriminator need, arity, and the distribution that
    provides it."""
    import json
    import sys

    from rich.console import Console
    from rich.table import Table

    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"{kind!r}; choose {', '.join(KINDS)}", param_hint="--kind")
    registry = load_registry(ctx.obj["plugins"])
    kinds = [kind] if kind else KINDS
    listed = {
        each: _backends(registry.manager) if each == BACKEND else [c.describe() for c in registry.all(each)]
        for each in kinds
    }
    if as_json:
        typer.echo(json.dumps([item for each in kinds for item in listed[each]], indent=2, default=str))
        return
    # Not a terminal (a pipe, a file): no wrapping or truncation at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 10_000, highlight=False)
    for each in kinds:
        hook = "facemath_open_backend" if each == BACKEND else HOOK_OF_KIND[each]
        table = Table(title=f"{each} ({hook})", title_justify="left", show_edge=False)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("help")
        table.add_column("parameters (defaults)")
        table.add_column("details")
        table.add_column("provided by", style="dim", no_wrap=True)
        for item in listed[each]:
            params = ", ".join(f"{k}={v}" for k, v in item["params"].items())
            details = item.get("order", "") if each == BACKEND else _details(item)
            table.add_row(item["name"], item["help"], params, details, item["provider"], end_section=False)
        if not listed[each]:
            table.add_row("[dim](none)[/dim]", "", "", "", "")
        console.print(table)
        console.print()
