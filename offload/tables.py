"""The one table renderer of the CLI and the benchmarks: plain text columns, as `ps` prints them."""

from __future__ import annotations

from collections.abc import Sequence


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, rule: bool = False
) -> list[str]:
    """The lines of a table: each column as wide as its widest cell, columns two spaces apart,
    no trailing spaces; with `rule`, a line of dashes under the headers."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(headers)]
    if rule:
        lines.append("  ".join("-" * w for w in widths))
    return lines + [line(row) for row in rows]
