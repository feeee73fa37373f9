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
    ) -> Row:
        """A row whose goal is `ratio <= limit` or `ratio >= limit`, met or not."""
        goal, met = (at_most if bound == "<=" else at_least)(ratio, limit)
        return cls(name, figure, baseline, ratio, goal, met, note)


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
    return "\n".join(out)


def print_and_exit(measure: Callable[[], Coroutine[Any, Any, list[Row]]]) -> None:
    """`python -m bench.<topic>`: run `measure`, print its table, and leave.

    It leaves with `os._exit`: a process that used a Temporal client can crash at
    interpreter exit (sdk-python issue 300) and turn a finished run into exit 134.
    """
    print(render(asyncio.run(measure())))
    sys.stdout.flush()
    os._exit(0)
