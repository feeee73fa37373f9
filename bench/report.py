"""Benchmark: the chunked report on a million leads against one SQL aggregate, and worker memory.

Runs its own PostgreSQL, Temporal dev server and SMTP sink on free ports, seeds one agent's
leads (100 thousand, then up to one million), and runs the worker as a subprocess so its
peak resident memory (VmHWM) can be read for each size. At each size the report and the
`GROUP BY` take turns, `RUNS` times, and each side's median is kept: on a shared machine a
single pair measures the neighbours as much as the report. The median report's history
says where its time went (`phases`).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from activities.reports import day_start
from bench.rows import Row, at_most, print_and_exit
from offload.db import QUERIES, create_pool, migrate
from offload.dev.stack import EmbeddedPostgres, SmtpSink, TemporalDevServer, find_binary
from offload.jobs.reports import enqueue_report, new_report_job
from offload.models import ReportJob
from offload.net import free_port
from offload.seed import seed
from offload.settings import Settings
from offload.temporal import connect

SIZES = (100_000, 1_000_000)
SEED_END = date(2026, 7, 1)
RSS_LIMIT_MB = 250.0
RUNS = 3
GOAL = 1.1


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def phases(history: WorkflowHistory) -> str:
    """Where a report's time went, from its history: plan, chunks, finalize and email."""
    events = list(history.events)
    began = events[0].event_time.ToDatetime()

    def at(event: HistoryEvent) -> float:
        return (event.event_time.ToDatetime() - began).total_seconds() * 1000

    chunks = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name
        == "aggregate_report_chunk"
    ]
    done = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
    tasks = sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events)
    planned, chunked, ended = at(chunks[0]), at(done[-1]), at(events[-1])
    return (
        f"plan {planned:.0f} ms, {len(chunks)} chunks {chunked - planned:.0f} ms, "
        f"finalize + email {ended - chunked:.0f} ms, {tasks} workflow tasks"
    )


async def measure() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="offload-bench-report-") as tmp:
        root = Path(tmp)
        postgres = EmbeddedPostgres(root / "pg", port=free_port(), durable=False)
        temporal = TemporalDevServer(port=free_port(), ui_port=None, db_file=root / "t.sqlite")
        smtp = SmtpSink(root / "mail", port=free_port())
        await postgres.start()
        await temporal.start()
        smtp.start()
        try:
            return await measure_on(postgres, temporal, smtp, root)
        finally:
            smtp.stop()
            await temporal.stop()
            postgres.stop()


async def measure_on(
    postgres: EmbeddedPostgres, temporal: TemporalDevServer, smtp: SmtpSink, root: Path
) -> list[Row]:
    conn = await asyncpg.connect(postgres.dsn())
    await conn.execute("CREATE DATABASE bench")
    await conn.close()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TEMPORAL_ADDRESS=temporal.address,
        DATABASE_URL=postgres.dsn("bench"),
        SMTP_HOST=smtp.host,
        SMTP_PORT=smtp.port,
        OFFLOAD_DATA_DIR=root / "data",
        OFFLOAD_TASK_QUEUE_PREFIX=f"bench-{uuid.uuid4().hex[:8]}-",
    )
    pool = await create_pool(settings, max_size=2)
    client = await connect(settings)
    await migrate(pool)
    first, last = SEED_END - timedelta(days=365), SEED_END - timedelta(days=1)
    window = (day_start(first), day_start(SEED_END))
    seeded = 0

    def report_over(start: date, end: date) -> ReportJob:
        report_id = f"bench-{start}-{end}-{uuid.uuid4().hex[:6]}"
        return new_report_job(settings, report_id=report_id, user_id=1, start=start, end=end)

    timings: dict[int, tuple[float, float, float]] = {}
    notes: list[str] = []
    try:
        for size in SIZES:
            began = time.monotonic()
            await seed(pool, leads=size - seeded, agents=1, seed=size, end=SEED_END)
            seeded = size
            print(f"seeded {size} leads in {time.monotonic() - began:.1f}s", file=sys.stderr)
            env = {**os.environ, **settings.to_env()}
            worker = await asyncio.create_subprocess_exec(
                find_binary("offload", "offload"),
                "worker",
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            reports: list[tuple[float, str]] = []
            aggregates: list[float] = []
            try:
                # Time a warm worker, as a long-lived one is: a one-day report first pays
                # for its start-up and the first run of the workflow sandbox.
                await (
                    await enqueue_report(client, settings, pool, report_over(last, last))
                ).result()
                for _ in range(RUNS):
                    began = time.monotonic()
                    await pool.fetch(QUERIES.report_by_sql, 1, *window)
                    aggregates.append(time.monotonic() - began)
                    began = time.monotonic()
                    handle = await enqueue_report(client, settings, pool, report_over(first, last))
                    result = await handle.result()
                    reports.append((time.monotonic() - began, phases(await handle.fetch_history())))
                    assert result.total_leads == size, (result.total_leads, size)
                rss = peak_rss_mb(worker.pid)
            finally:
                worker.terminate()
                await worker.wait()
            chunked, where = sorted(reports)[len(reports) // 2]
            monolithic = statistics.median(aggregates)
            timings[size] = (chunked, monolithic, rss)
            notes.append(f"{size:,} leads: {where}")
            print(
                f"{size} leads: chunked {', '.join(f'{t:.2f}' for t, _ in reports)}s, "
                f"one aggregate {', '.join(f'{t:.2f}' for t in aggregates)}s, "
                f"worker peak RSS {rss:.0f} MB; median report: {where}",
                file=sys.stderr,
            )
    finally:
        await pool.close()
    small, large = SIZES
    chunked, monolithic, rss_large = timings[large]
    rss_small = timings[small][2]
    ratio = chunked / monolithic
    flat = rss_large / rss_small
    flat_goal, flat_met = at_most(flat, 1.2)
    return [
        Row.with_goal(
            "<=",
            GOAL,
            name="report, 1M leads: chunked vs one SQL aggregate",
            figure=f"{chunked:.2f} s",
            baseline=f"{monolithic:.2f} s (one GROUP BY)",
            ratio=ratio,
            note=f"chunked = start to result, plan + chunks + CSV + email, on a warm worker "
            f"(a one-day report ran first); medians of {RUNS}, the sides taking turns, "
            f"load {os.getloadavg()[0]:.1f}; {'; '.join(notes)}",
        ),
        Row(
            name="report worker peak RSS, 1M vs 100k leads",
            figure=f"{rss_large:.0f} MB",
            baseline=f"{rss_small:.0f} MB (100k leads)",
            ratio=flat,
            goal=f"{flat_goal} and < {RSS_LIMIT_MB:g} MB",
            met=flat_met and rss_large < RSS_LIMIT_MB,
        ),
    ]


if __name__ == "__main__":
    print_and_exit(measure)
