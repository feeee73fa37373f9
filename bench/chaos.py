"""`make chaos`: 500 email jobs (and a report) through crashes and outages; nothing may be lost.

On its own stack on free ports (Temporal dev server on a SQLite file, PostgreSQL, an SMTP
sink process) with the worker as a child process (`offload worker`), it queues the jobs
and, while they run, SIGKILLs the worker twice (starting a new one each time), takes the
SMTP sink down for 15 seconds, and kills the Temporal dev server (SIGKILL) and starts it
again on its SQLite file. Then it checks, and exits 1 if any check failed:

- every job was delivered, or dead-lettered with its reason: none is lost;
- a message delivered twice carries the same Message-ID both times;
- the report equals the answer of one SQL query (needs the reports feature).

A check that needs a feature not on this branch is printed as "could not run".
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from bench.stack import Stack, load_note
from offload.db import QUERIES, create_pool
from offload.dev.stack import find_binary, stop_process
from offload.jobs.email import enqueue_email
from offload.models import EmailJob
from offload.settings import Settings
from offload.temporal import connect

JOBS = int(os.environ.get("CHAOS_JOBS", "500"))
# Recipients the sink refuses (550): these jobs must end in the dead-letter queue, not vanish.
REFUSED = 10
REFUSED_ADDRESS = "gone@example.com"
SINK_DOWN_SECONDS = 15
FINISH_SECONDS = 420


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


class WorkerProcess:
    """`offload worker` as a child process, with the stack's settings in its environment."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0

    def start(self) -> None:
        env = {**os.environ, **self.settings.to_env()}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [find_binary("offload", "offload"), "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started += 1

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)


@dataclass
class Check:
    name: str
    passed: bool | None  # None: could not run
    detail: str


@dataclass
class Run:
    stack: Stack
    settings: Settings
    worker: WorkerProcess
    client: Client
    jobs: list[EmailJob] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    report: Any = None  # the report's workflow handle, when reports are built

    def event(self, text: str) -> None:
        self.events.append(text)
        say(text)


def email_jobs(settings: Settings, run_id: str) -> list[EmailJob]:
    jobs = []
    for n in range(JOBS):
        refused = n % (JOBS // REFUSED) == 0 if REFUSED else False
        jobs.append(
            EmailJob(
                to=REFUSED_ADDRESS if refused else f"lead{n}@example.com",
                template="lead-confirmation",
                data={"name": f"Lead {n}", "property": f"{n} Harbour View"},
                idempotency_key=f"chaos-{run_id}-{n}",
                retry=settings.retry,
            )
        )
    return jobs


async def with_retries(action: Callable[[], Awaitable[Any]], seconds: float = 90) -> Any:
    """`action`, tried again while Temporal is unreachable (it restarts during the run)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await action()
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def enqueue_all(run: Run) -> None:
    """Queue every job, at most 20 starts at a time; a start that fails is tried again."""
    gate = asyncio.Semaphore(20)

    async def enqueue(job: EmailJob) -> None:
        async with gate:
            await with_retries(lambda: enqueue_email(run.client, run.settings, job))

    started = time.monotonic()
    await asyncio.gather(*(enqueue(job) for job in run.jobs))
    run.event(f"queued {len(run.jobs)} email jobs in {time.monotonic() - started:.1f} s")


async def chaos(run: Run) -> None:
    """The disruptions, each once mail is flowing, so that each one hits sends in flight."""

    async def after_more(count: int) -> int:
        target = run.stack.sink.count() + count
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if run.stack.sink.count() >= target:
                break
            await asyncio.sleep(0.1)
        return run.stack.sink.count()

    async def kill_worker(which: str) -> None:
        delivered = await after_more(40)
        run.worker.kill()
        run.event(f"SIGKILL worker ({which}) at {delivered} messages delivered")
        run.worker.start()
        run.event("worker started again")

    await kill_worker("first")
    delivered = await after_more(60)
    run.stack.sink.stop()
    run.event(f"SMTP sink down for {SINK_DOWN_SECONDS} s at {delivered} messages delivered")
    await asyncio.sleep(SINK_DOWN_SECONDS)
    await run.stack.sink.start()
    run.event("SMTP sink up again")
    delivered = await after_more(40)
    await run.stack.temporal.stop()
    run.event(f"Temporal dev server killed at {delivered} messages delivered")
    await run.stack.temporal.start()
    run.event(f"Temporal dev server started again on {run.stack.temporal.db_file}")
    await kill_worker("second")


async def wait_for_all(run: Run) -> dict[str, WorkflowExecutionStatus | None]:
    """Each job's final workflow status (None: still running when time ran out)."""
    deadline = time.monotonic() + FINISH_SECONDS
    last = -1
    while True:
        if run.worker.exited() is not None:
            run.event(f"worker exited on its own ({run.worker.exited()}); starting another")
            run.worker.start()
        running = await with_retries(
            lambda: run.client.count_workflows(
                "WorkflowType IN ('SendEmailWorkflow', 'GenerateReportWorkflow')"
                " AND ExecutionStatus = 'Running'"
            )
        )
        if running.count != last:
            say(f"{running.count} jobs still running, {run.stack.sink.count()} messages delivered")
            last = running.count
        if running.count == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    statuses: dict[str, WorkflowExecutionStatus | None] = {}
    for job in run.jobs:
        described = await with_retries(
            lambda job=job: run.client.get_workflow_handle(job.workflow_id).describe()
        )
        statuses[job.workflow_id] = described.status
    return statuses


def sink_messages(stack: Stack) -> dict[str, list[str]]:
    """Idempotency key -> the Message-ID of every copy the sink received."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in stack.sink.maildir.glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found[str(msg["X-Offload-Idempotency-Key"])].append(str(msg["Message-ID"]))
    return found


async def failure_reason(client: Client, workflow_id: str) -> str:
    try:
        await client.get_workflow_handle(workflow_id).result()
    except WorkflowFailureError as err:
        cause = err.cause
        while cause.__cause__ is not None:
            cause = cause.__cause__
        return f"{type(cause).__name__}: {cause}"
    return "completed"


async def dead_letters(settings: Settings) -> dict[str, str] | None:
    """Workflow id -> reason, from `offload dlq list --json`; None when the DLQ is not built."""
    try:
        import workflows.dead_letters  # noqa: F401
    except ModuleNotFoundError:
        return None
    done = await asyncio.to_thread(
        subprocess.run,
        [find_binary("offload", "offload"), "dlq", "list", "--json"],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"offload dlq list failed: {done.stderr}")
    entries = json.loads(done.stdout)
    return {str(e["workflow_id"]): f"{e['error_type']}: {e['error_message']}" for e in entries}


async def dead_letter_summary(client: Client, settings: Settings) -> Any:
    """The `summary` query of the dead-letter workflow: what an operator sees first."""
    from offload.jobs.dead_letters import dead_letter_handle
    from workflows.dead_letters import DeadLetterWorkflow

    handle = dead_letter_handle(client, settings)
    return await with_retries(lambda: handle.query(DeadLetterWorkflow.summary))


async def check_emails(
    run: Run, statuses: dict[str, WorkflowExecutionStatus | None]
) -> list[Check]:
    copies = sink_messages(run.stack)
    dlq = await dead_letters(run.settings)
    delivered, dead, lost = [], {}, []
    for job in run.jobs:
        status = statuses[job.workflow_id]
        if status == WorkflowExecutionStatus.COMPLETED and copies.get(job.idempotency_key):
            delivered.append(job)
        elif status == WorkflowExecutionStatus.FAILED:
            if dlq is None:
                dead[job.workflow_id] = await failure_reason(run.client, job.workflow_id)
            elif job.workflow_id in dlq:
                dead[job.workflow_id] = dlq[job.workflow_id]
            else:
                lost.append(job)
        else:
            lost.append(job)
    reasons = sorted({reason for reason in dead.values()})
    wrong_dead = [
        wid
        for wid, _ in dead.items()
        if not any(j.workflow_id == wid and j.to == REFUSED_ADDRESS for j in run.jobs)
    ]
    where = "in the dead-letter queue" if dlq is not None else "failed (no DLQ on this branch)"
    checks = [
        Check(
            "every job delivered or dead-lettered, none lost",
            not lost and not wrong_dead,
            f"{len(delivered)} delivered, {len(dead)} {where}, {len(lost)} lost"
            + (f" ({', '.join(j.workflow_id for j in lost[:5])} ...)" if lost else "")
            + (f"; dead but deliverable: {wrong_dead[:5]}" if wrong_dead else "")
            + "".join(f"\n      reason: {r}" for r in reasons[:3]),
        )
    ]
    if dlq is None:
        checks.append(
            Check(
                "failed jobs are in the dead-letter queue with their reason",
                None,
                "could not run: the dead-letter queue (branch dlq) is not on this branch",
            )
        )
    else:
        summary = await dead_letter_summary(run.client, run.settings)
        counted = summary.counts.get("email", {}).get("dead", 0)
        checks.append(
            Check(
                "the dead-letter workflow's summary counts the same entries",
                counted == len(dead) == REFUSED,
                f"summary query: {counted} email entries dead; table: {len(dead)}; "
                f"expected {REFUSED}",
            )
        )
    twice = {key: ids for key, ids in copies.items() if len(ids) > 1}
    differing = {key: ids for key, ids in twice.items() if len(set(ids)) > 1}
    checks.append(
        Check(
            "a message delivered twice carries the same Message-ID",
            not differing,
            f"{len(twice)} messages delivered more than once, "
            f"{sum(len(ids) - 1 for ids in twice.values())} extra copies, "
            f"{len(differing)} with differing Message-IDs",
        )
    )
    return checks


REPORT_LEADS = int(os.environ.get("CHAOS_REPORT_LEADS", "100000"))
REPORT_NOT_BUILT = "could not run: reports (branch reports) are not on this branch"
# Small chunks and slow pages, so that the report is still running when the faults hit.
REPORT_SETTINGS: dict[str, Any] = {
    "OFFLOAD_REPORT_CHUNK_ROWS": 2000,
    "OFFLOAD_REPORT_PAGE_SIZE": 500,
    "OFFLOAD_REPORT_PAGE_PAUSE_SECONDS": 1.0,
    "OFFLOAD_REPORT_HEARTBEAT_TIMEOUT_SECONDS": 5,
}


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def reports_built() -> bool:
    try:
        import workflows.reports  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


async def start_report(run: Run) -> None:
    """Seed leads and queue one report over them: it runs through the same faults."""
    from offload.jobs.reports import enqueue_report, new_report_job
    from offload.seed import seed

    pool = await create_pool(run.settings, max_size=2)
    try:
        seeded = await seed(pool, leads=REPORT_LEADS, agents=2, seed=7, end=date(2026, 7, 1))
        user_id = int(await pool.fetchval("SELECT min(id) FROM agents"))
        job = new_report_job(
            run.settings,
            report_id=f"chaos-{uuid.uuid4().hex[:8]}",
            user_id=user_id,
            start=seeded.first_day,
            end=seeded.last_day,
        )
        run.report = await with_retries(lambda: enqueue_report(run.client, run.settings, pool, job))
    finally:
        await pool.close()
    run.event(f"queued report {job.report_id} over {REPORT_LEADS} seeded leads")


async def check_report(run: Run) -> list[Check]:
    name = "the report equals the SQL answer"
    if run.report is None:
        return [Check(name, None, REPORT_NOT_BUILT)]
    from activities.reports import TOTAL, day_start

    handle = run.report
    try:
        result = await with_retries(lambda: handle.result())
    except WorkflowFailureError as err:
        return [Check(name, False, f"the report failed: {err.cause}")]
    lines = await asyncio.to_thread(read_csv, Path(result.file))
    job = (await with_retries(handle.describe)).id
    stats = await run.stack.sql(
        "SELECT json_build_object('user_id', user_id, 'start', start_day, 'end', end_day)"
        " FROM reports WHERE workflow_id = $1",
        job,
    )
    where = json.loads(stats)
    start = day_start(date.fromisoformat(where["start"]))
    end = day_start(date.fromisoformat(where["end"]) + timedelta(days=1))
    conn = await asyncpg.connect(run.stack.postgres.dsn())
    try:
        rows = await conn.fetch(QUERIES.report_by_sql, where["user_id"], start, end)
        totals = await conn.fetchrow(
            "SELECT count(*) AS n, round(avg(score)::numeric, 2) AS a,"
            " (SELECT source FROM leads WHERE agent_id = $1 AND created_at >= $2"
            "  AND created_at < $3 GROUP BY source ORDER BY count(*) DESC, source LIMIT 1) AS t"
            " FROM leads WHERE agent_id = $1 AND created_at >= $2 AND created_at < $3",
            where["user_id"],
            start,
            end,
        )
    finally:
        await conn.close()
    expected = [
        [r["day"].isoformat(), r["property"], str(r["leads"]), str(r["average_score"]),
         r["top_source"]]
        for r in rows
    ]  # fmt: skip
    assert totals is not None
    expected_total = [TOTAL, "", str(totals["n"]), str(totals["a"]), totals["t"]]
    body, total = lines[1:-1], lines[-1]
    same = body == expected and total == expected_total
    differing = sum(1 for a, b in zip(body, expected, strict=False) if a != b)
    return [
        Check(
            name,
            same,
            f"{len(body)} lines and the total ({total[2]} leads, average {total[3]}) "
            + ("equal" if same else f"differ from SQL ({differing} lines differ, "
               f"{len(body)} vs {len(expected)} lines, total {total} vs {expected_total})")
            + f" one GROUP BY; {result.chunks} chunks, {result.rows_read} rows read",
        )
    ]  # fmt: skip


async def main_async() -> int:
    root = Path(tempfile.mkdtemp(prefix="offload-chaos-"))
    say(f"chaos run in {root}; {load_note()}")
    stack = Stack(root, temporal_file=True)
    await stack.start()
    settings = stack.settings(
        OFFLOAD_RETRY_INITIAL_INTERVAL_SECONDS=0.5,
        OFFLOAD_RETRY_MAXIMUM_INTERVAL_SECONDS=4,
        OFFLOAD_RETRY_MAXIMUM_ATTEMPTS=40,
        OFFLOAD_WORKER_GRACE_SECONDS=5,
        **(REPORT_SETTINGS if reports_built() else {}),
    )
    (stack.sink.maildir / "rules.json").write_text(
        json.dumps({REFUSED_ADDRESS: "550 5.1.1 No such user"})
    )
    worker = WorkerProcess(settings, root / "worker.log")
    checks: list[Check] = []
    try:
        worker.start()
        client = await connect(settings)
        run = Run(stack, settings, worker, client, email_jobs(settings, uuid.uuid4().hex[:8]))
        if reports_built():
            await start_report(run)
        started = time.monotonic()
        await asyncio.gather(enqueue_all(run), chaos(run))
        statuses = await wait_for_all(run)
        say(f"all jobs closed {time.monotonic() - started:.0f} s after the first was queued")
        checks += await check_emails(run, statuses)
        checks += await check_report(run)
    finally:
        worker.stop()
        await stack.stop()
    print()
    print("chaos: worker SIGKILLed twice, SMTP sink down 15 s, Temporal dev server killed once")
    for check in checks:
        mark = {True: "PASS", False: "FAIL", None: "SKIP"}[check.passed]
        print(f"  {mark}  {check.name}: {check.detail}")
    failed = [c for c in checks if c.passed is False]
    skipped = [c for c in checks if c.passed is None]
    print(
        f"{len(checks) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
        f"{len(skipped)} could not run"
    )
    if failed:
        print(f"data kept in {root} (worker.log, temporal.log, mail/)")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


def main() -> None:
    code = asyncio.run(main_async())
    sys.stdout.flush()
    # A process that used a Temporal client can crash at interpreter exit (sdk-python 300).
    os._exit(code)


if __name__ == "__main__":
    main()
