"""Engine overhead of the email job: latency and throughput beside a bare no-op workflow.

One run, one dev server, one worker process (this one): Offload's email job and the bare
one-activity workflow (`bench.bare`) run on workers built with the same options, and the
two sides alternate (A B B A ...) so that the machine's noise falls on both. Run it with
`python -m bench.email`, or all benchmarks with `make bench`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareWorkflow, bare_noop
from bench.rows import Row, at_least, at_most, print_and_exit
from bench.stack import Stack, load_note, running_stack
from offload import queues
from offload.db import create_pool
from offload.jobs.email import enqueue_email
from offload.jobs.start import start_job
from offload.models import EmailJob
from offload.settings import Settings
from offload.temporal import connect
from workers.main import build_workers, run_workers

LATENCY_SAMPLES = int(os.environ.get("BENCH_EMAIL_LATENCY_SAMPLES", "100"))
THROUGHPUT_BATCH = int(os.environ.get("BENCH_EMAIL_BATCH", "100"))
THROUGHPUT_ROUNDS = int(os.environ.get("BENCH_EMAIL_ROUNDS", "3"))
WARMUP = 10

Side = Callable[[int], Awaitable[None]]


def bare_workers(client: Client, settings: Settings) -> list[Worker]:
    """The bare side's workers, with the options `build_workers` gives Offload's."""
    grace = settings.worker_grace_period
    prefix = settings.task_queue_prefix
    return [
        Worker(
            client,
            task_queue=queues.named(queues.WORKFLOWS, prefix),
            workflows=[BareWorkflow],
            graceful_shutdown_timeout=grace,
        ),
        Worker(
            client,
            task_queue=queues.named(queues.EMAIL, prefix),
            activities=[bare_noop],
            graceful_shutdown_timeout=grace,
            max_task_queue_activities_per_second=settings.email_rate_limit_per_second,
        ),
    ]


def email_job(settings: Settings, key: str) -> EmailJob:
    return EmailJob(
        to="lead@example.com",
        template="lead-confirmation",
        data={"name": "Ada Lovelace", "property": "12 Harbour View"},
        idempotency_key=key,
        retry=settings.retry,
    )


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def abba(rounds: int) -> list[int]:
    """Which side goes when: 0 1 1 0, repeated, so neither always runs first or last."""
    return [0, 1, 1, 0] * rounds


async def latencies(sides: Sequence[Side], samples: int) -> list[list[float]]:
    """Milliseconds from enqueue to result, one job at a time, the sides alternating."""
    found: list[list[float]] = [[] for _ in sides]
    order = abba((samples + 1) // 2)
    counters = [0] * len(sides)
    for which in order:
        if counters[which] >= samples:
            continue
        started = time.perf_counter()
        await sides[which](counters[which])
        found[which].append((time.perf_counter() - started) * 1000)
        counters[which] += 1
    return found


@dataclass
class Throughput:
    """Jobs per second of each side over the whole phase, and the ratio of the two."""

    rates: list[float]
    # The median of each A B B A block's ratio: a burst of the neighbours' load hits one
    # block, not the figure.
    ratio: float
    block_ratios: list[float]


async def throughputs(sides: Sequence[Side], batch: int, rounds: int) -> Throughput:
    """`batch` jobs at once per side, sides alternating A B B A, `rounds` times."""
    spent = [[0.0 for _ in range(rounds)] for _ in sides]
    offsets = [0] * len(sides)
    for n, which in enumerate(abba(rounds)):
        started = time.perf_counter()
        base = offsets[which]
        await asyncio.gather(*(sides[which](base + k) for k in range(batch)))
        spent[which][n // 4] += time.perf_counter() - started
        offsets[which] += batch
    # Each block runs 2 batches a side: the ratio of rates is the inverse ratio of times.
    block_ratios = [bare / email for email, bare in zip(spent[0], spent[1], strict=True)]
    return Throughput(
        rates=[2 * batch * rounds / sum(side) for side in spent],
        ratio=statistics.median(block_ratios),
        block_ratios=block_ratios,
    )


async def measure_on(stack: Stack) -> list[Row]:
    """Both sides on `stack`: latency first, one job at a time, then throughput."""
    run = uuid.uuid4().hex[:8]
    offload = stack.settings(f"bench-{run}-offload-")
    bare = stack.settings(f"bench-{run}-bare-")
    client = await connect(offload)
    pool = await create_pool(offload, max_size=10)
    workers = build_workers(client, offload, pool, ["workflows", "email"])
    workers += bare_workers(client, bare)
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))

    def side_of(phase: str) -> list[Side]:
        async def send(n: int) -> None:
            job = email_job(offload, f"{run}-{phase}-{n}")
            result = await (await enqueue_email(client, offload, job)).result()
            assert result.status == "sent", result

        async def noop(n: int) -> None:
            job = email_job(bare, f"{run}-{phase}-{n}")
            handle = await start_job(
                client, bare, BareWorkflow.run, job, workflow_id=f"bare-{job.idempotency_key}"
            )
            await handle.result()

        return [send, noop]

    try:
        await latencies(side_of("warmup"), WARMUP)
        sent_before = stack.sink.count()
        email_ms, bare_ms = await latencies(side_of("latency"), LATENCY_SAMPLES)
        throughput = await throughputs(side_of("throughput"), THROUGHPUT_BATCH, THROUGHPUT_ROUNDS)
        delivered = stack.sink.count() - sent_before
    finally:
        stop.set()
        await running
        await pool.close()
    expected = LATENCY_SAMPLES + THROUGHPUT_BATCH * THROUGHPUT_ROUNDS * 2
    load = load_note()
    p50, bare_p50 = statistics.median(email_ms), statistics.median(bare_ms)
    p99, bare_p99 = percentile(email_ms, 99), percentile(bare_ms, 99)
    goal, met = at_most(p50 / bare_p50, 1.2)
    rows = [
        Row(
            name="email job enqueue->delivered p50",
            figure=f"{p50:.0f} ms",
            baseline=f"{bare_p50:.0f} ms (bare 1-activity workflow)",
            ratio=p50 / bare_p50,
            goal=goal,
            met=met,
            note=f"{LATENCY_SAMPLES} jobs a side, one at a time, alternating; {load}",
        ),
        Row(
            name="email job enqueue->delivered p99",
            figure=f"{p99:.0f} ms",
            baseline=f"{bare_p99:.0f} ms (bare 1-activity workflow)",
            ratio=p99 / bare_p99,
            goal="(none)",
            met=True,
        ),
    ]
    email_rate, bare_rate = throughput.rates
    goal, met = at_least(throughput.ratio, 0.85)
    blocks = ", ".join(f"{r:.2f}" for r in throughput.block_ratios)
    rows.append(
        Row(
            name="email jobs per second",
            figure=f"{email_rate:.1f} jobs/s",
            baseline=f"{bare_rate:.1f} workflows/s (bare)",
            ratio=throughput.ratio,
            goal=goal,
            met=met,
            note=f"batches of {THROUGHPUT_BATCH} at once, {THROUGHPUT_ROUNDS * 2} a side, "
            f"A B B A; ratio = median of the blocks' ratios ({blocks}); "
            f"{delivered}/{expected} messages reached the sink; {load}",
        )
    )
    return rows


async def measure() -> list[Row]:
    """Start a stack on free ports, measure both sides on it, stop it."""
    with tempfile.TemporaryDirectory(prefix="offload-bench-email-") as root:
        async with running_stack(Path(root)) as stack:
            return await measure_on(stack)


if __name__ == "__main__":
    print_and_exit(measure)
