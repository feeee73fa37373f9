"""The dead-letter queue under faults: a killed worker mid-redrive, overlapping updates while
the history passes its limit, a failed job started again. Dev server, PostgreSQL, SMTP sink.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateStage,
)

from offload import queues
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.dead_letters import dead_letter_handle
from offload.jobs.email import enqueue_email
from offload.jobs.outbox import OutboxRelay, write
from offload.models import (
    DeadLetterBatch,
    DeadLetterEntry,
    DeadLetterState,
    DiscardRequest,
    RedriveRequest,
)
from offload.settings import Settings
from tests.api import eventually
from tests.dead_letters import REFUSED, email_to, refused_email
from tests.harness import offload_process, run_offload, running_worker
from workflows.dead_letters import DeadLetterWorkflow

HISTORIES = Path(__file__).parent.parent / "replay" / "histories"


def dead_email(settings: Settings) -> DeadLetterEntry:
    """An email job that failed for good, as `run_job` records it."""
    job = email_to(settings)
    return DeadLetterEntry(
        kind="email",
        workflow_id=job.workflow_id,
        run_id=str(uuid.uuid4()),
        workflow_type="SendEmailWorkflow",
        task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
        input=job.model_dump(mode="json"),
        error_type="SmtpPermanentError",
        error_message=REFUSED,
        attempts=1,
        failed_at=datetime.now(UTC),
    )


async def record(client: Client, settings: Settings, entries: list[DeadLetterEntry]) -> None:
    """Signal entries to the dead-letter workflow as failing jobs do (signal-with-start)."""
    await client.start_workflow(
        DeadLetterWorkflow.run,
        DeadLetterState(max_history_events=settings.dlq_max_history_events),
        id=queues.dead_letters_id(settings.task_queue_prefix),
        task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
        start_signal="record",
        start_signal_args=[DeadLetterBatch(entries=entries)],
    )


async def stored(pool: Pool, status: str | None = None) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM dead_letters WHERE $1::text IS NULL OR status = $1", status
        )
    )


async def history_length(handle: WorkflowHandle[DeadLetterWorkflow, None]) -> int:
    return int((await handle.describe()).raw_description.workflow_execution_info.history_length)


async def test_overlapping_updates_and_a_burst_past_the_history_limit_all_complete(
    client: Client, settings: Settings, pool: Pool
) -> None:
    settings = settings.model_copy(update={"dlq_max_history_events": 100})
    first, second = dead_email(settings), dead_email(settings)
    async with running_worker(client, settings, pool):
        await record(client, settings, [first, second])
        await eventually(lambda: _at_least(pool, 2))
        dlq = dead_letter_handle(client, settings)
        first_run = (await dlq.describe()).run_id
        # Hold the first discard in flight: its UPDATE waits on this row lock.
        async with pool.acquire() as conn:
            holder = conn.transaction()
            await holder.start()
            await conn.execute("SELECT 1 FROM dead_letters WHERE id = $1 FOR UPDATE", first.id)
            one = await dlq.start_update(
                DeadLetterWorkflow.discard,
                DiscardRequest(ids=[first.id]),
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
            # A burst of failures, each stored, until the history passes its limit.
            burst: list[DeadLetterEntry] = []
            while await history_length(dlq) < 100:
                burst.append(dead_email(settings))
                await record(client, settings, burst[-1:])
                await eventually(lambda: _at_least(pool, 2 + len(burst)))
            # One more failure, and a second update queued behind the first.
            late = dead_email(settings)
            await record(client, settings, [late])
            two = await dlq.start_update(
                DeadLetterWorkflow.discard,
                DiscardRequest(ids=[second.id]),
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )
            await holder.rollback()
        assert (await asyncio.wait_for(one.result(), 30)).discarded == [first.id]
        assert (await asyncio.wait_for(two.result(), 30)).discarded == [second.id]
        await eventually(lambda: _at_least(pool, 3 + len(burst)), 30)
        listed = {r["id"] for r in await pool.fetch("SELECT id FROM dead_letters")}
        assert listed == {e.id for e in [first, second, *burst, late]}

        async def continued() -> bool:
            return (await dlq.describe()).run_id != first_run

        await eventually(continued, 30)
        summary = await dlq.query(DeadLetterWorkflow.summary)
        assert summary.counts == {"email": {"dead": len(burst) + 1, "discarded": 2}}
        assert summary.continued_as_new >= 1
        if os.environ.get("OFFLOAD_RECORD_HISTORIES"):
            history = await client.get_workflow_handle(dlq.id, run_id=first_run).fetch_history()
            (HISTORIES / "dead-letters-drained-with-updates-in-flight.json").write_text(
                history.to_json()
            )


async def _at_least(pool: Pool, count: int) -> bool:
    return await stored(pool) >= count


async def test_a_redrive_interrupted_by_a_worker_sigkill_finishes_and_starts_each_once(
    client: Client, settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    total = 100
    entries = [dead_email(settings) for _ in range(total)]
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    # No email worker: the redriven jobs wait on their queue; their starts are what counts.
    worker_args = ("worker", "--queues", "workflows,default")
    with logs[0].open("wb") as out:
        worker = offload_process(settings, *worker_args, stdout=out, stderr=out)
    try:
        await record(client, settings, entries)
        await eventually(lambda: _at_least(pool, total))
        dlq = dead_letter_handle(client, settings)
        update = await dlq.start_update(
            DeadLetterWorkflow.redrive,
            # Four seconds of starts: time to kill the worker in the middle.
            RedriveRequest(kind="email", rate=25),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )

        async def some_redriven() -> bool:
            return await stored(pool, "redriven") > 0

        await eventually(some_redriven)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        at_kill = await stored(pool, "redriven")
        assert at_kill < total, "the redrive finished before the kill: the test proves nothing"
        with logs[1].open("wb") as out:
            worker = offload_process(settings, *worker_args, stdout=out, stderr=out)
        result = await asyncio.wait_for(update.result(), 90)
        # Every entry redriven, under its own id, counted once, those started before the kill too.
        rows = await pool.fetch("SELECT status, redrive_workflow_id FROM dead_letters")
        assert {r["status"] for r in rows} == {"redriven"}
        assert sorted(r["redrive_workflow_id"] for r in rows) == sorted(
            f"{e.workflow_id}-redrive-1" for e in entries
        )
        assert result.count == total
        summary = await dlq.query(DeadLetterWorkflow.summary)
        assert summary.counts == {"email": {"dead": 0, "redriven": total}}
        started = started_emails(client, settings)
        await eventually(lambda: _equals(started, total), 30)
        await asyncio.sleep(1)  # time for a wrongly repeated start to show
        assert await started() == total
        # The workflow still answers: another redrive finds nothing left.
        again = await asyncio.wait_for(
            dlq.execute_update(DeadLetterWorkflow.redrive, RedriveRequest(kind="email")), 30
        )
        assert again.count == 0
    finally:
        worker.terminate()
        worker.wait(30)


def started_emails(client: Client, settings: Settings) -> Callable[[], Awaitable[int]]:
    """How many email jobs have started on this test's queue (Temporal visibility)."""
    queue = queues.named(queues.WORKFLOWS, settings.task_queue_prefix)

    async def count() -> int:
        found = await client.count_workflows(
            f'TaskQueue = "{queue}" AND WorkflowType = "SendEmailWorkflow"'
        )
        return found.count

    return count


@pytest.mark.usefixtures("worker")
async def test_a_failed_job_started_again_is_not_run_again(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    job, handle = await refused_email(client, settings, smtp_sink, "gone@example.com")
    await eventually(lambda: _at_least(pool, 1))
    failed_run = (await handle.describe()).run_id

    # The API's start landed but its outbox mark did not: the relay starts the row again.
    async with pool.acquire() as conn, conn.transaction():
        await write(conn, "email", job.workflow_id, job)
    relay = OutboxRelay(client, settings.model_copy(update={"outbox_grace_seconds": 0}), pool)
    assert await relay.relay_once() == 1
    again = await enqueue_email(client, settings, job)

    assert (await client.get_workflow_handle(job.workflow_id).describe()).run_id == failed_run
    assert again.id == job.workflow_id
    await asyncio.sleep(1)  # time for a wrongly started run to fail and be dead-lettered
    assert await stored(pool) == 1
    assert smtp_sink.messages() == []


async def test_a_redrive_at_a_rate_is_spread_over_its_time_and_starts_each_once(
    client: Client, settings: Settings, pool: Pool
) -> None:
    total, rate = 500, 100
    # No email worker: the redriven jobs wait on their queue; the starts are what is measured.
    async with running_worker(client, settings, pool, kinds=["workflows", "default"]):
        for _ in range(0, total, 250):
            await record(client, settings, [dead_email(settings) for _n in range(250)])
        await eventually(lambda: _at_least(pool, total))
        args = ("dlq", "redrive", "--kind", "email", "--rate", f"{rate}/s")

        dry = await asyncio.to_thread(run_offload, settings, *args, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.count("would start SendEmailWorkflow email-") == total
        assert f"dry run: {total} job(s) would start, about 5 s at 100/s" in dry.stdout
        assert await stored(pool, "redriven") == 0

        done = await asyncio.to_thread(run_offload, settings, *args, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"redriving {total} entries at 100/s, about 5 s" in done.stdout
        shown = [int(n) for n in re.findall(rf"started +(\d+) of {total}", done.stdout)]
        assert any(0 < n < total for n in shown), done.stdout
        assert f"{total} job(s) redriven" in done.stdout
        first, last = await pool.fetchrow(
            "SELECT min(resolved_at), max(resolved_at) FROM dead_letters WHERE status = 'redriven'"
        )
        spread = (last - first).total_seconds()
        # Never faster than the rate; slower only as far as a loaded server is slow.
        assert 0.9 * (total - 1) / rate <= spread <= total / rate + 60, spread
        assert await stored(pool, "redriven") == total

        started = started_emails(client, settings)
        await eventually(lambda: _equals(started, total), 30)
        await asyncio.sleep(1)  # time for a wrongly repeated start to show
        assert await started() == total


async def _equals(count: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await count() == expected
