"""The matching trip: the bare shapes on dev servers started with different flags, side by side.

Every configuration gets its own dev server (a SQLite file or memory, plus its flags), all
running at once, each with its own client and workers (`bench.email.bare_workers`). Jobs
run one at a time in blocks of one shape on one server, back to back as a stream of jobs
arrives; the blocks take turns across configurations and shapes (A B C C B A ...), so the
machine's noise falls on all of them alike. For each configuration it prints p50 and p99
of three shapes, the server's own time for a trip through matching (from a task's
Scheduled event to its Started event, read from the histories), and jobs/s with a batch
in flight.

- `queued`: a workflow whose one no-op activity runs on the email queue (3 trips).
- `local`: a workflow with one local no-op activity, started normally (1 trip).
- `eager`: the same, started eagerly by the client its worker runs on (no trip).

    python -m bench.matching                       # the configurations below
    python -m bench.matching --samples 100 --batch 0 --only file,file+dev
    python -m bench.matching --only file --config 'full=file --sqlite-pragma journal_mode=wal'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench.bare import BareWorkflow, FastBareWorkflow
from bench.email import bare_workers, email_job, percentile, throughputs, turns
from bench.rows import Row
from bench.stack import load_note
from offload.dev.stack import SERVER_FLAGS, TemporalDevServer
from offload.jobs.start import start_job
from offload.net import free_port
from offload.settings import Settings
from offload.tables import table
from offload.temporal import connect
from workers.main import run_workers

SAMPLES = int(os.environ.get("BENCH_MATCHING_SAMPLES", "60"))
WARMUP = 5
BLOCK = int(os.environ.get("BENCH_MATCHING_BLOCK", "10"))
BATCH = int(os.environ.get("BENCH_MATCHING_BATCH", "50"))
ROUNDS = 1

# What every dev server ran before "The matching trip" (one partition), and each change alone.
BEFORE = tuple(flag for flag in SERVER_FLAGS if "Partitions=" in flag)
WAL = tuple(flag for flag in SERVER_FLAGS if flag.startswith("--sqlite-pragma"))
RPS = tuple(flag for flag in SERVER_FLAGS if "transferProcessorMaxPollRPS" in flag)


@dataclass(frozen=True)
class Config:
    """A dev server: in a SQLite file or in memory, with these flags."""

    label: str
    file: bool
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Config:
        """`label=file|memory FLAG...`: the flags go after `BEFORE` (one partition)."""
        label, _, rest = text.partition("=")
        words = shlex.split(rest)
        if not label or not words or words[0] not in ("file", "memory"):
            raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=file|memory [FLAG...]")
        return cls(label, words[0] == "file", (*BEFORE, *words[1:]))


CONFIGS = [
    Config("memory", file=False, args=BEFORE),
    Config("file", file=True, args=BEFORE),
    Config("file+wal", file=True, args=(*BEFORE, *WAL)),
    Config("file+rps", file=True, args=(*BEFORE, *RPS)),
    Config("memory+dev", file=False, args=SERVER_FLAGS),
    Config("file+dev", file=True, args=SERVER_FLAGS),
]

SHAPES = {
    "queued": "workflow + activity on another queue (3 trips)",
    "local": "workflow + local activity (1 trip)",
    "eager": "eager start + local activity (no trip)",
}

Shape = Callable[[str], Awaitable[WorkflowHandle[object, None]]]


@dataclass
class Side:
    """One configuration's server, its clients and what was measured on it."""

    config: Config
    server: TemporalDevServer
    settings: Settings
    shapes: dict[str, Shape] = field(default_factory=dict)
    ms: dict[str, list[float]] = field(default_factory=dict)
    trips: dict[str, list[float]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)


async def side_for(config: Config, root: Path, stack: AsyncExitStack) -> Side:
    """Start `config`'s server with its workers; `stack` stops them."""
    server = TemporalDevServer(
        port=free_port(),
        ui_port=None,
        db_file=root / f"{config.label}.sqlite" if config.file else None,
        log_file=root / f"{config.label}.log",
        extra_args=list(config.args),
    )
    await server.start()
    stack.push_async_callback(server.stop)
    settings = Settings(
        _env_file=None,
        TEMPORAL_ADDRESS=server.address,
        OFFLOAD_TASK_QUEUE_PREFIX=f"match-{uuid.uuid4().hex[:8]}-",
    )
    # The workers' client starts eagerly; one without workers cannot (the SDK checks).
    worker_client = await connect(settings)
    starter = await connect(settings)
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(bare_workers(worker_client, settings), stop))

    async def stop_workers() -> None:
        stop.set()
        await running

    stack.push_async_callback(stop_workers)

    def shape(client: Client, run: Callable[..., Awaitable[None]], name: str) -> Shape:
        async def start(key: str) -> WorkflowHandle[object, None]:
            job = email_job(settings, key)
            return await start_job(client, settings, run, job, workflow_id=f"{name}-{key}")

        return start

    side = Side(config, server, settings)
    side.shapes = {
        "queued": shape(starter, BareWorkflow.run, "queued"),
        "local": shape(starter, FastBareWorkflow.run, "local"),
        "eager": shape(worker_client, FastBareWorkflow.run, "eager"),
    }
    return side


SCHEDULED = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
}


async def trip_ms(handle: WorkflowHandle[object, None]) -> list[float]:
    """Milliseconds from each task's Scheduled event to its Started event, by the server's clock.

    A task handed back in the start's answer (eager) has its Started at once: no trip.
    """
    scheduled: dict[int, float] = {}
    found = []
    async for event in handle.fetch_history_events():
        at = event.event_time.ToNanoseconds() / 1e6
        if event.event_type in SCHEDULED:
            scheduled[event.event_id] = at
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            found.append(
                at - scheduled[event.workflow_task_started_event_attributes.scheduled_event_id]
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            found.append(
                at - scheduled[event.activity_task_started_event_attributes.scheduled_event_id]
            )
    return found


async def measure_throughput(units: Sequence[tuple[Side, str]], run: str, batch: int) -> None:
    """Jobs/s of each shape on each server with `batch` at once, the units taking turns."""

    def unit(side: Side, name: str) -> Callable[[int], Awaitable[None]]:
        async def job(n: int) -> None:
            await (await side.shapes[name](f"{run}-batch-{n}")).result()

        return job

    found = await throughputs([unit(*u) for u in units], batch, ROUNDS)
    for (side, name), rate in zip(units, found.rates, strict=True):
        side.rates[name] = rate


async def measure_configs(
    configs: Sequence[Config], root: Path, samples: int, batch: int, block: int = BLOCK
) -> list[Side]:
    """`samples` jobs of each shape on each configuration, in blocks taking turns.

    A block is `block` jobs of one shape on one server, one after the other with no pause,
    as a stream of jobs arrives; its first job follows an idle spell and is not counted.
    Then, with `batch`, throughput: `batch` jobs at once (`bench.email.throughputs`).
    """
    per_turn = block - 1
    rounds = -(-samples // (2 * per_turn))
    async with AsyncExitStack() as stack:
        sides = [await side_for(config, root, stack) for config in configs]
        units = [(side, name) for side in sides for name in SHAPES]
        run = uuid.uuid4().hex[:8]
        for side, name in units:  # warm-up: the first jobs on each queue are slower
            for n in range(WARMUP):
                await (await side.shapes[name](f"{run}-warmup-{n}")).result()
        for turn, which in enumerate(turns(len(units), rounds)):
            side, name = units[which]
            handles = []
            for n in range(block):
                started = time.perf_counter()
                try:
                    handle = await side.shapes[name](f"{run}-{turn}-{n}")
                    await handle.result()
                except Exception as err:
                    err.add_note(f"on the {side.config.label} server ({side.server.address})")
                    raise
                elapsed = (time.perf_counter() - started) * 1000
                if n > 0:
                    side.ms.setdefault(name, []).append(elapsed)
                    handles.append(handle)
            # After the block: reading the histories in it would space its jobs out.
            for handle in handles:
                side.trips.setdefault(name, []).extend(await trip_ms(handle))
        if batch:
            await measure_throughput(units, run, batch)
    return sides


def report(sides: Sequence[Side], samples: int, batch: int) -> str:
    """One line per configuration and shape, then what each configuration's flags were."""
    headers = ("configuration", "shape", "p50 ms", "p99 ms", "trip p50 ms", "jobs/s")
    rows = []
    for side in sides:
        for name, label in SHAPES.items():
            ms, trips = side.ms[name][:samples], side.trips[name]
            rate = side.rates.get(name)
            rows.append(
                (
                    side.config.label,
                    label,
                    f"{statistics.median(ms):.1f}",
                    f"{percentile(ms, 99):.1f}",
                    f"{statistics.median(trips):.1f}" if trips else "-",
                    f"{rate:.1f}" if rate is not None else "-",
                )
            )
    lines = [
        f"{samples} jobs a shape and configuration, one at a time in blocks of {BLOCK - 1} "
        f"taking turns; jobs/s with {batch} at once; {load_note()}",
        *table(headers, rows, rule=True),
        "",
    ]
    for side in sides:
        where = "SQLite file" if side.config.file else "in memory"
        lines.append(f"{side.config.label}: {where} {shlex.join(side.config.args)}")
    return "\n".join(lines)


MAKE_BENCH_SAMPLES = int(os.environ.get("BENCH_MATCHING_MAKE_SAMPLES", "18"))


async def measure() -> list[Row]:
    """`make bench`'s rows: each shape on a SQLite dev server with and without the new flags."""
    before, after = Config("file", True, BEFORE), Config("offload dev", True, SERVER_FLAGS)
    with tempfile.TemporaryDirectory(prefix="offload-bench-matching-") as root:
        old, new = await measure_configs([before, after], Path(root), MAKE_BENCH_SAMPLES, 0)
    rows = []
    for name, label in SHAPES.items():
        p50, old_p50 = statistics.median(new.ms[name]), statistics.median(old.ms[name])
        trip = f", trip {statistics.median(new.trips[name]):.1f}" if new.trips[name] else ""
        old_trip = f", trip {statistics.median(old.trips[name]):.1f}" if old.trips[name] else ""
        rows.append(
            Row(
                name=f"SQLite dev server, the matching trip's flags: {label}",
                figure=f"{p50:.1f} ms (p99 {percentile(new.ms[name], 99):.0f}{trip})",
                baseline=f"{old_p50:.1f} ms (p99 {percentile(old.ms[name], 99):.0f}{old_trip}) "
                "without them",
                ratio=p50 / old_p50,
                goal="(none)",
                met=True,
                note=f"{MAKE_BENCH_SAMPLES} jobs a side, in blocks of {BLOCK - 1} back to back, "
                f"taking turns; {load_note()}"
                if name == "queued"
                else "",
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.matching", description=__doc__)
    parser.add_argument("--samples", type=int, default=SAMPLES, help="jobs per shape and config")
    parser.add_argument("--batch", type=int, default=BATCH, help="jobs at once (0: no throughput)")
    parser.add_argument("--only", help="comma-separated labels of the built-in configurations")
    parser.add_argument(
        "--config", type=Config.parse, action="append", default=[], help="LABEL=file|memory FLAG..."
    )
    args = parser.parse_args(argv)
    configs = list(CONFIGS)
    if args.only:
        wanted = args.only.split(",")
        configs = [c for c in configs if c.label in wanted]
    configs += args.config
    keep = os.environ.get("BENCH_MATCHING_KEEP")  # a folder: the servers' files and logs stay
    with tempfile.TemporaryDirectory(prefix="offload-bench-matching-") as temporary:
        root = Path(keep or temporary)
        root.mkdir(parents=True, exist_ok=True)
        sides = asyncio.run(measure_configs(configs, root, args.samples, args.batch))
    print(report(sides, args.samples, args.batch))
    sys.stdout.flush()
    os._exit(0)  # sdk-python issue 300, as bench.rows.print_and_exit


if __name__ == "__main__":
    main()
