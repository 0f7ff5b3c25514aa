"""Tables of rows (dicts with the same keys) as Markdown: the report, `facemath attributes` and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable


def markdown_table(rows: list[dict], cell: Callable[[object], str] = str, align: bool = False) -> str:
    """A Markdown table with the first row's keys as columns; a row without a key gets an empty cell.

    `cell` formats one value; `align` pads the columns to equal widths, for reading on a terminal.
    """
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[cell(row[c]) if c in row else "" for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if align else 0 for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) if align else "---" for w in widths) + "|"
    return "\n".join([line(columns), rule, *(line(r) for r in cells)])
