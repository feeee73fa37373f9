"""One row of `make bench`: a figure measured beside its baseline in the same run, and its goal."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from offload.tables import table


@dataclass(frozen=True)
class Row:
    """`figure` and `baseline` were measured side by side; `ratio` is what the goal bounds."""

    name: str
    figure: str  # e.g. "142 ms"
    baseline: str  # e.g. "120 ms (bare one-activity workflow)"
    ratio: float
    goal: str  # e.g. "<= 1.2"
    met: bool
    note: str = ""
    # What limits the figure, printed when the goal is missed: a goal missed is reported with
    # its cause (docs/performance.md explains each).
    limited_by: str = ""

    @classmethod
    def with_goal(
        cls,
        bound: Literal["<=", ">="],
        limit: float,
        *,
        name: str,
        figure: str,
        baseline: str,
        ratio: float,
        note: str = "",
        limited_by: str = "",
    ) -> Row:
        """A row whose goal is `ratio <= limit` or `ratio >= limit`, met or not."""
        goal, met = (at_most if bound == "<=" else at_least)(ratio, limit)
        return cls(name, figure, baseline, ratio, goal, met, note, limited_by)


def at_most(ratio: float, limit: float) -> tuple[str, bool]:
    return f"<= {limit:g}", ratio <= limit


def at_least(ratio: float, limit: float) -> tuple[str, bool]:
    return f">= {limit:g}", ratio >= limit


def render(rows: Sequence[Row]) -> str:
    """The table `make bench` prints."""
    headers = ("measure", "offload", "baseline", "ratio", "goal", "met")
    cells = [
        (r.name, r.figure, r.baseline, f"{r.ratio:.2f}", r.goal, "yes" if r.met else "NO")
        for r in rows
    ]
    out = table(headers, cells, rule=True)
    out += [f"  note: {r.name}: {r.note}" for r in rows if r.note]
    out += [
        f"  missed: {r.name.strip()} ({r.ratio:.2f}, goal {r.goal}): {why(r)}"
        for r in rows
        if not r.met
    ]
    return "\n".join(out)


def why(row: Row) -> str:
    """What limits a row whose goal is missed."""
    return row.limited_by or "no known cause; see docs/performance.md"


def print_and_exit(measure: Callable[[], Coroutine[Any, Any, list[Row]]]) -> None:
    """`python -m bench.<topic>`: run `measure`, print its table, and leave.

    It leaves with `os._exit`: a process that used a Temporal client can crash at
    interpreter exit (sdk-python issue 300) and turn a finished run into exit 134.
    """
    print(render(asyncio.run(measure())))
    sys.stdout.flush()
    os._exit(0)
