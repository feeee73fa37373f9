"""`make bench`: every benchmark that exists on this branch, one table, each figure beside its goal.

Each module `bench.<topic>` exposes `async def measure() -> list[Row]` and starts its own
services on free ports. A module not built yet shows as a "not built" row; one that fails
shows as a "failed" row, and the run exits 1.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

from bench.rows import Row, render

# (module, what it measures, its goal): the goal is printed even when the module is missing.
BENCHMARKS = [
    (
        "bench.email",
        "email job latency and throughput vs the fastest bare shape",
        "p50 <= 1.5, >= 0.85",
    ),
    ("bench.peers", "email job vs DBOS, procrastinate and Celery", "p50 <= 2x DBOS"),
    ("bench.delivered", "POST /leads to delivered, one lead at a time", "p50 <= 40 ms"),
    ("bench.matching", "bare shapes on offload dev's server before/after its flags", "-"),
    ("bench.digest", "digest emails/s vs a plain aiosmtplib loop", ">= 0.7"),
    ("bench.api", "POST /leads p99 vs a bare INSERT endpoint", "<= 1.5"),
    ("bench.report", "chunked report on 1M leads vs one SQL aggregate", "<= 1.5"),
]


def missing(module: str, what: str, goal: str, status: str) -> Row:
    return Row(
        name=f"{what}",
        figure=status,
        baseline="-",
        ratio=math.nan,
        goal=goal,
        met=False,
        note=f"{module}: {status}",
    )


async def collect() -> tuple[list[Row], bool]:
    rows: list[Row] = []
    failed = False
    for module, what, goal in BENCHMARKS:
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            rows.append(missing(module, what, goal, "not built"))
            continue
        measure: Callable[[], Awaitable[list[Row]]] = loaded.measure
        started = time.monotonic()
        print(f"running {module} ...", file=sys.stderr, flush=True)
        try:
            rows += await measure()
        except Exception:
            traceback.print_exc()
            rows.append(missing(module, what, goal, "failed"))
            failed = True
        print(f"{module} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return rows, failed


def main() -> None:
    rows, failed = asyncio.run(collect())
    print(render(rows))
    sys.stdout.flush()
    # A process that used a Temporal client can crash at interpreter exit (sdk-python 300).
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
