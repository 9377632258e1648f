"""Markdown tables: the one helper every command, report and benchmark prints its tables with.

``align`` gives one letter per column: ``l`` (left, the default for missing letters), ``r``
(right, for numbers) or ``c`` (centred)::

    >>> print(markdown_table(["task", "PSNR"], [["rain", "31.20"]], align="lr"))
    | task | PSNR |
    |---|---:|
    | rain | 31.20 |

Cells are written with ``str``: format numbers before. A command that prints its rows as
they come writes :func:`markdown_header` first, then one :func:`markdown_row` per row.

This module is at the bottom of the package: it imports nothing from moewir.
"""
from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["markdown_table", "markdown_header", "markdown_row"]

_RULES = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_row(cells: Iterable[object]) -> str:
    """``| a | b |``."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_header(headers: Sequence[object], align: str = "") -> str:
    """The header line and the alignment rule under it (two lines, no trailing newline)."""
    if len(align) > len(headers) or set(align) - set(_RULES):
        raise ValueError(f"align must be at most {len(headers)} of the letters l, r, c; got {align!r}")
    rules = [_RULES[a] for a in align.ljust(len(headers), "l")]
    return markdown_row(headers) + "\n|" + "|".join(rules) + "|"


def markdown_table(headers: Sequence[object], rows: Iterable[Iterable[object]], align: str = "") -> str:
    """The whole table (no trailing newline); see the module docstring."""
    return "\n".join([markdown_header(headers, align), *(markdown_row(row) for row in rows)])
