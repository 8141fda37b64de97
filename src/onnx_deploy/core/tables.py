"""The one table formatter: plain-text columns for summaries, or a markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    widths: Sequence[int | None] | None = None,
    align: str = "",
    sep: str = " ",
    rule: str = "",
    indent: str = "",
    markdown: bool = False,
) -> str:
    """``header`` and ``rows`` (cells already formatted; anything else goes through ``str``)
    as aligned text. ``widths``: each column's width (``None``: its widest cell); a longer
    cell overflows, as in an f-string. ``align``: ``<`` or ``>`` per column (default ``<``).
    ``rule``: a character repeated under the header. ``markdown``: a GitHub table instead."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(indent + line for line in lines)
    n = len(cells[0])
    fixed = list(widths) if widths is not None else [None] * n
    sizes = [
        w if w is not None else max(len(row[i]) for row in cells if i < len(row))
        for i, w in enumerate(fixed)
    ]
    aligns = align.ljust(n, "<")
    lines = [
        sep.join(f"{c:{aligns[i]}{sizes[i]}}" for i, c in enumerate(row)).rstrip() for row in cells
    ]
    if rule:
        lines.insert(1, rule * len(lines[0]))
    return "\n".join(indent + line for line in lines)


def ms(value: float) -> str:
    """Milliseconds to three significant digits: 0.0352, 24.7, 151 (1234 above 1000)."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal (``-`` for None)."""
    return "-" if value is None else f"{100 * value:.1f}%"
