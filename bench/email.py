"""Engine overhead of the email job: latency and throughput beside the bare engine's floor.

One run, one dev server, one worker process (this one): Offload's email job, the fastest
bare shape (`bench.bare.FastBareWorkflow`: eager start, one local no-op activity), the
email job's shape before the fast path (`BareWorkflow`: one no-op activity on the email
queue) and a standalone activity (`client.execute_activity`, no workflow) run on workers
built with the same options, the sides taking turns (A B C D D C B A ...) so that the
machine's noise falls on all of them. The in-memory dev server first (what the ratios
are taken on), then the SQLite one `offload dev` runs, for latency. Run it with
`python -m bench.email`, or all benchmarks with `make bench`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from activities.email import EmailActivities
from bench.bare import BareWorkflow, FastBareWorkflow, bare_noop
from bench.rows import Row, print_and_exit
from bench.stack import Stack, load_note, running_stack
from offload import queues
from offload.db import Pool, create_pool
from offload.jobs.email import enqueue_email
from offload.jobs.start import start_job
from offload.models import EmailJob
from offload.settings import Settings
from offload.temporal import connect
from workers.main import build_workers, run_workers

LATENCY_SAMPLES = int(os.environ.get("BENCH_EMAIL_LATENCY_SAMPLES", "100"))
SQLITE_SAMPLES = int(os.environ.get("BENCH_EMAIL_SQLITE_SAMPLES", "40"))
THROUGHPUT_BATCH = int(os.environ.get("BENCH_EMAIL_BATCH", "100"))
THROUGHPUT_ROUNDS = int(os.environ.get("BENCH_EMAIL_ROUNDS", "3"))
# Batches of `deliver` called directly, for the send's own CPU (`measure_send_alone`).
SEND_ALONE_BATCHES = 4
WARMUP = 10
JOBS_GOAL = 0.85
# The processes an email's send runs in (`Stack.cpu` names).
SEND_PROCESSES = ("this process", "sink", "postgres")

Side = Callable[[int], Awaitable[None]]
# The sides, in the order `sides_on` returns them.
OFFLOAD, FAST_BARE, QUEUED_BARE, STANDALONE = range(4)


def bare_workers(client: Client, settings: Settings) -> list[Worker]:
    """The bare sides' workers, with the options `build_workers` gives Offload's."""
    grace = settings.worker_grace_period
    prefix = settings.task_queue_prefix
    return [
        Worker(
            client,
            task_queue=queues.named(queues.WORKFLOWS, prefix),
            workflows=[BareWorkflow, FastBareWorkflow],
            activities=[bare_noop],
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


def turns(sides: int, rounds: int) -> list[int]:
    """Which side goes when: 0 1 .. n-1 n-1 .. 1 0, repeated, so none always goes first."""
    there = list(range(sides))
    return (there + there[::-1]) * rounds


async def latencies(sides: Sequence[Side], samples: int) -> list[list[float]]:
    """Milliseconds from enqueue to result, one job at a time, the sides taking turns."""
    found: list[list[float]] = [[] for _ in sides]
    for n, which in enumerate(turns(len(sides), (samples + 1) // 2)):
        started = time.perf_counter()
        await sides[which](n)
        found[which].append((time.perf_counter() - started) * 1000)
    return [side[:samples] for side in found]


@dataclass
class Throughput:
    """Jobs per second of each side over the whole phase, and the ratio of the first two."""

    rates: list[float]
    # The median of each block's ratio: a burst of the neighbours' load hits one block, not
    # the figure.
    ratio: float
    block_ratios: list[float]
    # CPU milliseconds per job of each side, by process (`Stack.cpu`), when measured: with
    # every process busy, the jobs/s ratio is about the inverse ratio of their sums.
    cpu_per_job: list[dict[str, float]] = field(default_factory=list)


async def throughputs(
    sides: Sequence[Side],
    batch: int,
    rounds: int,
    cpu: Callable[[], dict[str, float]] | None = None,
) -> Throughput:
    """`batch` jobs at once per side, sides taking turns, `rounds` blocks of two batches each;
    with `cpu` (`Stack.cpu`), the CPU each side's jobs cost each process too."""
    spent = [[0.0 for _ in range(rounds)] for _ in sides]
    used: list[Counter[str]] = [Counter() for _ in sides]
    per_block = 2 * len(sides)
    for n, which in enumerate(turns(len(sides), rounds)):
        before = cpu() if cpu else {}
        started = time.perf_counter()
        await asyncio.gather(*(sides[which](n * batch + k) for k in range(batch)))
        spent[which][n // per_block] += time.perf_counter() - started
        if cpu:
            used[which].update({k: v - before.get(k, 0.0) for k, v in cpu().items()})
    # Each block runs 2 batches a side: the ratio of rates is the inverse ratio of times.
    block_ratios = [fast / email for email, fast in zip(spent[0], spent[1], strict=True)]
    jobs = 2 * batch * rounds
    return Throughput(
        rates=[jobs / sum(side) for side in spent],
        ratio=statistics.median(block_ratios),
        block_ratios=block_ratios,
        cpu_per_job=[{k: 1000 * v / jobs for k, v in side.items()} for side in used if side],
    )


def cpu_note(offload: dict[str, float], bare: dict[str, float]) -> str:
    """'CPU per job, Offload/bare: this process 17.1/12.3 ms, temporal ...; sum 34.9/25.4'."""
    parts = [f"{k} {v:.1f}/{bare.get(k, 0.0):.1f}" for k, v in offload.items()]
    sums = f"{sum(offload.values()):.1f}/{sum(bare.values()):.1f}"
    return f"CPU per job, Offload/bare (ms): {', '.join(parts)}; sum {sums}"


def throughput_limit(
    cpu_per_job: list[dict[str, float]], send_alone: dict[str, float] | None = None
) -> str:
    """What holds the email's jobs/s below the no-op's, in this run's CPU figures: what each
    process spends on an email more than on a no-op, and, with `send_alone` (CPU per email of
    `deliver` called directly, `measure_send_alone`), whether the send by itself already
    takes more than the goal allows."""
    cause = "CPU: every process shares the two cores, and an email costs more than a no-op"
    if cpu_per_job:
        offload, bare = cpu_per_job
        extra = {k: v - bare.get(k, 0.0) for k, v in offload.items()}
        cause += (
            f" (the mail server and PostgreSQL {extra['sink'] + extra['postgres']:.1f} ms a job, "
            f"this process {extra['this process']:.1f} ms and the Temporal server "
            f"{extra['temporal']:.1f} ms more than the baseline)"
        )
        if send_alone:
            cause += "; " + send_allowance(bare, sum(extra.values()), send_alone)
    return cause + '; docs/performance.md, "Throughput: why 0.85 is not reached"'


def send_allowance(bare: dict[str, float], extra: float, send_alone: dict[str, float]) -> str:
    """What 0.85 of the no-op's rate allows an email on top of the no-op's CPU (`bare`, by
    process), what the send alone takes of it, and what is left for the rest of the job,
    which costs `extra` ms more than the no-op in all."""
    # With every process busy the rates go as the inverse of the CPU sums, so the goal
    # allows an email 1/0.85 - 1 of the no-op's sum on top of it.
    floor = sum(bare.values())
    allowed = floor * (1 / JOBS_GOAL - 1)
    # The send's own processes: the Temporal server's CPU meanwhile is its idle workers'
    # polls, which no send asks for.
    send = sum(send_alone[k] for k in SEND_PROCESSES)
    said = (
        f"{JOBS_GOAL} of the bare shape's rate allows {allowed:.1f} ms a job more than its "
        f"{floor:.1f} ms, and the send alone (deliver called directly, no workflow) costs "
        f"{send:.1f} ms: this process {send_alone['this process']:.1f}, the mail server "
        f"{send_alone['sink']:.1f}, PostgreSQL {send_alone['postgres']:.1f}"
    )
    if send >= allowed:
        return said + (
            ", more than the whole allowance: no job shape that sends this email reaches "
            f"{JOBS_GOAL} while the mail server and PostgreSQL share these cores"
        )
    return said + (
        f", leaving {allowed - send:.1f} ms for the rest of the job, which costs "
        f"{extra - send:.1f} ms more here (the workflow around the send: its patch marker, "
        "local activity and payloads)"
    )


def latency_limit(p50: float, floor_p50: float) -> str:
    """What holds the email's p50 above the no-op's, in this run's figures."""
    return (
        f"the send's fixed time: {p50 - floor_p50:.1f} ms of deliver (lookup, SMTP "
        f"conversation, email_log insert) on a bare floor of {floor_p50:.1f} ms; it stays 6-9 ms "
        "while the floor moves from 12 to 25 ms with the hour, so the quicker the hour, the "
        "larger the ratio; "
        'docs/performance.md, "Latency: what the floor is made of"'
    )


def sides_on(client: Client, offload: Settings, bare: Settings, phase: str) -> list[Side]:
    """Offload's email job, the fast bare shape, the queued bare shape, a standalone activity."""

    async def send(n: int) -> None:
        job = email_job(offload, f"{phase}-{n}")
        result = await (await enqueue_email(client, offload, job)).result()
        assert result.status == "sent", result

    def bare_side(shape: type[BareWorkflow] | type[FastBareWorkflow]) -> Side:
        async def run(n: int) -> None:
            job = email_job(bare, f"{phase}-{n}")
            workflow_id = f"bare-{shape.__name__}-{job.idempotency_key}"
            await (await start_job(client, bare, shape.run, job, workflow_id=workflow_id)).result()

        return run

    async def standalone(n: int) -> None:
        job = email_job(bare, f"{phase}-{n}")
        await client.execute_activity(
            bare_noop,
            job,
            id=f"bare-activity-{job.idempotency_key}",
            task_queue=queues.named(queues.EMAIL, bare.task_queue_prefix),
            start_to_close_timeout=timedelta(seconds=60),
        )

    return [send, bare_side(FastBareWorkflow), bare_side(BareWorkflow), standalone]


async def standalone_supported(side: Side) -> str:
    """'' when the server runs standalone activities, else why not (the row says so)."""
    try:
        await asyncio.wait_for(side(-1), 30)
    except Exception as err:
        return f"{type(err).__name__}: {str(err)[:120]}"
    return ""


async def measure_send_alone(
    stack: Stack, settings: Settings, pool: Pool, phase: str, batch: int, batches: int
) -> dict[str, float]:
    """CPU milliseconds per email, by process, of `deliver` called directly, `batches` times
    `batch` at once, as the jobs/s blocks run their jobs: the lookup, the SMTP conversation
    and the insert with no workflow around them, the least any job shape that sends the email
    costs."""
    emails = EmailActivities(settings, pool, keep_connections=settings.smtp_max_connections)
    results = []
    try:
        # Connected and warm first, as the workers' connections are by then.
        await emails.deliver(email_job(settings, f"{phase}-warmup"), workflow_id=None)
        before = stack.cpu()
        for b in range(batches):
            keys = (f"{phase}-{b * batch + n}" for n in range(batch))
            results += await asyncio.gather(
                *(emails.deliver(email_job(settings, key), workflow_id=None) for key in keys)
            )
        after = stack.cpu()
    finally:
        await emails.close()
    assert all(result.status == "sent" for result in results), "a send alone was not sent"
    return {k: 1000 * (v - before.get(k, 0.0)) / len(results) for k, v in after.items()}


async def measure_on(stack: Stack, *, throughput: bool, samples: int) -> dict[str, object]:
    """Every side on `stack`: latency, one job at a time, then (if asked) throughput."""
    run = uuid.uuid4().hex[:8]
    offload = stack.settings(f"bench-{run}-offload-")
    bare = stack.settings(f"bench-{run}-bare-")
    client = await connect(offload)
    pool = await create_pool(offload, max_size=10)
    workers = build_workers(client, offload, pool, ["workflows", "email"])
    workers += bare_workers(client, bare)
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    found: dict[str, object] = {}
    try:
        all_sides = sides_on(client, offload, bare, f"{run}-probe")
        found["standalone"] = await standalone_supported(all_sides[STANDALONE])
        keep = [i for i in range(4) if i != STANDALONE or not found["standalone"]]

        def chosen(phase: str) -> list[Side]:
            every = sides_on(client, offload, bare, f"{run}-{phase}")
            return [every[i] for i in keep]

        await latencies(chosen("warmup"), WARMUP)
        sent_before = stack.sink.count()
        measured = await latencies(chosen("latency"), samples)
        found["latency"] = dict(zip(keep, measured, strict=True))
        expected = samples
        if throughput:
            two = chosen("throughput")[:2]
            found["throughput"] = await throughputs(
                two, THROUGHPUT_BATCH, THROUGHPUT_ROUNDS, cpu=stack.cpu
            )
            # Today's shape and the standalone activity: one round, for the table.
            again = chosen("others")
            others = again[2:]
            if others:
                extra = await throughputs([again[0], *others], THROUGHPUT_BATCH, 1)
                found["other_rates"] = dict(zip(keep[2:], extra.rates[1:], strict=True))
            expected += THROUGHPUT_BATCH * THROUGHPUT_ROUNDS * 2 + THROUGHPUT_BATCH * 2
            found["send_alone"] = await measure_send_alone(
                stack, offload, pool, f"{run}-alone", THROUGHPUT_BATCH, SEND_ALONE_BATCHES
            )
            expected += THROUGHPUT_BATCH * SEND_ALONE_BATCHES + 1
        found["delivered"] = (stack.sink.count() - sent_before, expected)
    finally:
        stop.set()
        await running
        await pool.close()
    found["load"] = load_note()
    return found


SHAPES = {
    FAST_BARE: "eager start + 1 local no-op activity",
    QUEUED_BARE: "1 no-op activity on the email queue (the old shape)",
    STANDALONE: "standalone activity, client.execute_activity",
}


def latency_rows(found: dict[str, object], server: str) -> list[Row]:
    """Offload's p50 against the fast bare shape's (the goal), the other shapes beside it."""
    by_side: dict[int, list[float]] = found["latency"]  # type: ignore[assignment]
    email_ms, fast_ms = by_side[OFFLOAD], by_side[FAST_BARE]
    p50, fast_p50 = statistics.median(email_ms), statistics.median(fast_ms)
    rows = [
        Row.with_goal(
            "<=",
            1.5,
            name=f"email job enqueue->delivered p50 ({server})",
            figure=f"{p50:.1f} ms (p99 {percentile(email_ms, 99):.0f})",
            baseline=f"{fast_p50:.1f} ms (p99 {percentile(fast_ms, 99):.0f}) {SHAPES[FAST_BARE]}",
            ratio=p50 / fast_p50,
            note=f"{len(email_ms)} jobs a side, one at a time, sides taking turns; {found['load']}",
            limited_by=latency_limit(p50, fast_p50),
        )
    ]
    for side in (QUEUED_BARE, STANDALONE):
        if side in by_side:
            ms = by_side[side]
            rows.append(
                Row(
                    name=f"  bare shape p50 ({server}): {SHAPES[side]}",
                    figure=f"{statistics.median(ms):.1f} ms (p99 {percentile(ms, 99):.0f})",
                    baseline=f"{fast_p50:.1f} ms fastest bare shape",
                    ratio=statistics.median(ms) / fast_p50,
                    goal="(none)",
                    met=True,
                )
            )
    if found.get("standalone"):
        rows.append(
            Row(
                name=f"  bare shape ({server}): {SHAPES[STANDALONE]}",
                figure="not run",
                baseline="-",
                ratio=float("nan"),
                goal="(none)",
                met=True,
                note=f"the dev server refused it: {found['standalone']}",
            )
        )
    return rows


def throughput_rows(found: dict[str, object]) -> list[Row]:
    throughput: Throughput = found["throughput"]  # type: ignore[assignment]
    email_rate, fast_rate = throughput.rates
    blocks = ", ".join(f"{r:.2f}" for r in throughput.block_ratios)
    delivered, expected = found["delivered"]  # type: ignore[misc]
    send_alone: dict[str, float] | None = found.get("send_alone")  # type: ignore[assignment]
    rows = [
        Row.with_goal(
            ">=",
            JOBS_GOAL,
            name="email jobs per second (in-memory dev server)",
            figure=f"{email_rate:.1f} jobs/s",
            baseline=f"{fast_rate:.1f} workflows/s {SHAPES[FAST_BARE]}",
            ratio=throughput.ratio,
            note=f"batches of {THROUGHPUT_BATCH} at once, {THROUGHPUT_ROUNDS * 2} a side, "
            f"taking turns; ratio = median of the blocks' ratios ({blocks}); "
            f"{delivered}/{expected} messages reached the sink; "
            + (f"{cpu_note(*throughput.cpu_per_job)}; " if throughput.cpu_per_job else "")
            + str(found["load"]),
            limited_by=throughput_limit(throughput.cpu_per_job, send_alone),
        )
    ]
    others: dict[int, float] = found.get("other_rates", {})  # type: ignore[assignment]
    for side, rate in others.items():
        rows.append(
            Row(
                name=f"  bare shape jobs/s: {SHAPES[side]}",
                figure=f"{rate:.1f} /s",
                baseline=f"{fast_rate:.1f} /s fastest bare shape",
                ratio=rate / fast_rate,
                goal="(none)",
                met=True,
            )
        )
    return rows


async def measure() -> list[Row]:
    """The in-memory dev server (latency, throughput), then the SQLite one (latency)."""
    with tempfile.TemporaryDirectory(prefix="offload-bench-email-") as root:
        async with running_stack(Path(root) / "memory") as stack:
            memory = await measure_on(stack, throughput=True, samples=LATENCY_SAMPLES)
        async with running_stack(Path(root) / "sqlite", temporal_file=True) as stack:
            sqlite = await measure_on(stack, throughput=False, samples=SQLITE_SAMPLES)
    return [
        *latency_rows(memory, "in-memory dev server"),
        *throughput_rows(memory),
        *latency_rows(sqlite, "SQLite dev server, as offload dev"),
    ]


if __name__ == "__main__":
    print_and_exit(measure)
