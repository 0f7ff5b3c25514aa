"""`facemath plugins`: everything the installed and named plugins provide."""

from __future__ import annotations

from typing import Annotated

import typer

from facemath_core.components import HOOK_OF_KIND


def plugins_command(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(HOOK_OF_KIND)}.")] = None,
):
    """List every loss term, optimizer, operator, mask and blender, with its help line and the distribution
    that provides it."""
    from rich.console import Console
    from rich.table import Table

    from facemath_core.plugins import load_registry

    if kind is not None and kind not in HOOK_OF_KIND:
        raise typer.BadParameter(f"{kind!r}; choose {', '.join(HOOK_OF_KIND)}", param_hint="--kind")
    registry = load_registry(ctx.obj["plugins"])
    console = Console()
    for each in [kind] if kind else list(HOOK_OF_KIND):
        table = Table(title=f"{each} ({HOOK_OF_KIND[each]})", title_justify="left", show_edge=False)
        table.add_column("name", style="bold")
        table.add_column("help")
        table.add_column("defaults")
        table.add_column("provided by", style="dim")
        for provided in registry.all(each):
            c = provided.component
            defaults = ", ".join(f"{k}={v}" for k, v in c.defaults.items())
            table.add_row(c.name, c.help, defaults, provided.distribution)
        if not registry.all(each):
            table.add_row("[dim](none)[/dim]", "", "", "")
        console.print(table)
        console.print()
