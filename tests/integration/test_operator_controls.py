"""Operator controls on the dev server: delayed, cancelled, paused and prioritised jobs.

Real parts throughout: the Temporal dev server, PostgreSQL, the SMTP sink, Offload's worker.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from offload import queues
from offload.db import Pool
from offload.dev.stack import SinkRules, SmtpSink
from offload.jobs.control import JobInfo, JobQuery, cancel_job, cancel_matching, list_jobs, show_job
from offload.jobs.email import enqueue_email
from offload.jobs.errors import JobInputError
from offload.jobs.pause import pause_kind, paused_kinds, resume_kind
from offload.jobs.start import StartOptions
from offload.jobs.stats import collect_stats, render_table
from offload.models import EmailJob
from offload.settings import Settings
from tests.api import eventually
from tests.harness import on_the_email_queue, run_offload, running_worker
from workers.main import activities_by_queue

STARTED = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED


def email(settings: Settings, to: str = "ada@example.com", **retry: Any) -> EmailJob:
    return EmailJob(
        to=to,
        template="lead-confirmation",
        data={"name": "Ada Lovelace", "property": "12 Harbour View"},
        idempotency_key=str(uuid.uuid4()),
        retry=settings.retry.model_copy(update=retry),
    )


async def status_of(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    return (await handle.describe()).status


async def dead_letters(pool: Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM dead_letters")
    return count


@pytest.mark.usefixtures("worker")
async def test_a_delayed_job_is_listed_as_scheduled_then_runs_once_at_its_time(
    client: Client, settings: Settings, smtp_sink: SmtpSink
) -> None:
    queued_at = datetime.now(UTC)
    handle = await enqueue_email(
        client, settings, email(settings), StartOptions(delay=timedelta(seconds=3))
    )
    found: list[JobInfo] = []

    async def listed_as_scheduled() -> bool:
        query = JobQuery(status="scheduled")
        found[:] = await list_jobs(client, settings, query, datetime.now(UTC))
        return bool(found)

    # Visibility follows the start within a moment.
    await eventually(listed_as_scheduled, seconds=2.5)
    [listed] = found
    assert (listed.id, listed.kind, listed.status, listed.attempts) == (
        handle.id,
        "email",
        "scheduled",
        0,
    )
    assert listed.scheduled_for is not None
    assert listed.scheduled_for >= queued_at + timedelta(seconds=3)
    await asyncio.sleep(1)
    assert smtp_sink.messages() == []

    result = await handle.result()
    assert result.sent_at >= queued_at + timedelta(seconds=3)
    assert len(smtp_sink.messages()) == 1
    # Queued again under its key: the same job, no second message.
    again = await enqueue_email(
        client,
        settings,
        email(settings).model_copy(update={"idempotency_key": handle.id.removeprefix("email-")}),
    )
    await again.result()
    assert len(smtp_sink.messages()) == 1
    shown = await show_job(client, settings, handle.id, datetime.now(UTC))
    assert shown is not None
    assert (shown.status, shown.attempts, shown.priority) == ("completed", 1, 2)
    assert shown.url.endswith(f"/workflows/{handle.id}/{shown.run_id}/history")


@pytest.mark.usefixtures("worker")
async def test_a_delayed_job_cancelled_before_its_time_ends_canceled_and_sends_nothing(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    handle = await enqueue_email(
        client, settings, email(settings), StartOptions(delay=timedelta(seconds=4))
    )
    outcome = await cancel_job(client, settings, handle.id)
    assert outcome.outcome == "cancel requested"
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert await status_of(handle) == WorkflowExecutionStatus.CANCELED
    await asyncio.sleep(1)
    assert smtp_sink.messages() == []
    assert await dead_letters(pool) == 0
    assert (await cancel_job(client, settings, handle.id)).outcome == "already canceled"


@pytest.mark.usefixtures("worker")
async def test_a_job_cancelled_while_retrying_ends_canceled_not_dead_lettered(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    smtp_sink.rules.set("ada@example.com", "451 4.3.0 Try again later")
    handle = await enqueue_email(client, settings, email(settings))

    async def retried() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return bool(pending) and pending[0].attempt >= 2

    await eventually(retried)
    await cancel_job(client, settings, handle.id)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert await status_of(handle) == WorkflowExecutionStatus.CANCELED
    smtp_sink.rules.set("ada@example.com", None)
    await asyncio.sleep(1.5)
    assert smtp_sink.messages() == []
    assert await dead_letters(pool) == 0


async def test_a_send_on_the_wire_when_cancelled_finishes_and_the_job_says_it_was_sent(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    # On the email queue (a rate-limited worker makes no local first attempt): a queued
    # activity hears of the cancel only at a heartbeat, so the send on the wire finishes.
    # docs/operator-controls.md says what a cancel does to the local first attempt.
    smtp_sink.data_delay_seconds = 2
    queued = on_the_email_queue(settings)
    async with running_worker(client, queued, pool):
        await cancel_during_send(client, settings, pool, smtp_sink)


async def cancel_during_send(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    handle = await enqueue_email(client, settings, email(settings))

    async def sending() -> bool:
        # The message is on the wire: DATA begun, not yet answered.
        return smtp_sink.data_begun > 0

    await eventually(sending)
    await cancel_job(client, settings, handle.id)
    # The job waited for the send instead of claiming Canceled while the message went out.
    result = await handle.result()
    assert result.status == "sent"
    assert len(smtp_sink.messages()) == 1
    assert await status_of(handle) == WorkflowExecutionStatus.COMPLETED
    assert await dead_letters(pool) == 0


@pytest.mark.usefixtures("worker")
async def test_cancel_by_kind_is_one_batch_operation_and_the_cli_prints_how_many(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    later = StartOptions(delay=timedelta(minutes=10))
    handles = [await enqueue_email(client, settings, email(settings), later) for _ in range(3)]

    async def listed() -> bool:
        found = await list_jobs(client, settings, JobQuery(kind="email"), datetime.now(UTC))
        return len(found) == 3

    await eventually(listed)
    # Off a terminal (a script, CI), a bulk cancel wants --yes and says how many it would hit.
    refused = await asyncio.to_thread(run_offload, settings, "jobs", "cancel", "--kind", "email")
    assert refused.returncode == 2
    assert "would cancel 3 email job(s); add --yes" in refused.stderr
    done = await asyncio.to_thread(
        run_offload, settings, "jobs", "cancel", "--kind", "email", "--yes"
    )
    assert done.returncode == 0, done.stderr
    assert "cancel requested for 3 of 3 email job(s)" in done.stdout
    for handle in handles:
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert await status_of(handle) == WorkflowExecutionStatus.CANCELED
    assert smtp_sink.messages() == []
    assert await dead_letters(pool) == 0
    with pytest.raises(JobInputError, match="names the kind"):
        await cancel_matching(client, settings, JobQuery(), datetime.now(UTC), "no kind")


class CountingRules(SinkRules):
    """Defers every recipient while `deferring`, and counts the attempts that reached SMTP."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.deferring = True

    def reply_for(self, address: str) -> str | None:
        self.attempts += 1
        return "451 4.3.0 Try again later" if self.deferring else None


@pytest.mark.parametrize("recovers", [True, False], ids=["smtp-recovers", "smtp-stays-down"])
@pytest.mark.usefixtures("worker")
async def test_a_paused_kind_resumes_with_no_attempt_lost(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink, recovers: bool
) -> None:
    rules = CountingRules()
    smtp_sink.rules = rules
    handle = await enqueue_email(client, settings, email(settings, maximum_attempts=4))

    async def two_attempts() -> bool:
        return rules.attempts >= 2

    await eventually(two_attempts)
    await pause_kind(pool, "email", "SMTP provider down")
    assert [p.kind for p in await paused_kinds(pool)] == ["email"]
    stats = await collect_stats(client, settings, "", pool)
    assert [(p.kind, p.reason) for p in stats.paused_kinds or []] == [
        ("email", "SMTP provider down")
    ]
    assert "email  " in render_table(stats).split("paused kinds")[1].split("dead-letter")[0]

    async def waiting() -> bool:
        return not (await handle.describe()).raw_description.pending_activities

    await eventually(waiting)
    before = rules.attempts
    # Past several retry intervals (0.2 s, doubling): a paused job makes no attempt at all.
    await asyncio.sleep(1.5)
    assert rules.attempts == before <= 3
    assert await status_of(handle) == WorkflowExecutionStatus.RUNNING
    assert await dead_letters(pool) == 0
    shown = await show_job(client, settings, handle.id, datetime.now(UTC))
    assert shown is not None and shown.attempts == before

    later = await enqueue_email(
        client,
        settings,
        email(settings, to="later@example.com"),
        StartOptions(delay=timedelta(minutes=10)),
    )
    rules.deferring = not recovers
    resumed = await resume_kind(client, settings, pool, "email")
    # Only the running job is told; the delayed one keeps its time.
    assert resumed.changed and resumed.signalled == 1
    if recovers:
        # Woken by the resume signal, not the periodic recheck minutes later.
        result = await asyncio.wait_for(handle.result(), 20)
        assert result.status == "sent"
        assert len(smtp_sink.messages()) == 1
        assert rules.attempts == before + 1
        assert await dead_letters(pool) == 0
        later_job = await show_job(client, settings, later.id, datetime.now(UTC))
        assert later_job is not None and later_job.status == "scheduled"
        assert [m["To"] for m in smtp_sink.messages()] == ["ada@example.com"]
    else:
        # The attempts it had left, and no more: four in all, then the dead-letter queue.
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 30)
        assert rules.attempts == 4

        async def dead_lettered() -> bool:
            return await dead_letters(pool) == 1

        await eventually(dead_lettered)


async def test_a_high_priority_job_overtakes_a_backlog(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    low = [
        await enqueue_email(client, settings, email(settings), StartOptions(priority=5))
        for _ in range(12)
    ]
    urgent = await enqueue_email(
        client, settings, email(settings, to="urgent@example.com"), StartOptions(priority=1)
    )

    async def listed_with_priorities() -> bool:
        listed = await list_jobs(client, settings, JobQuery(kind="email"), datetime.now(UTC))
        return sorted(job.priority for job in listed) == [1] + [5] * 12

    await eventually(listed_with_priorities)

    async def all_waiting_for_smtp() -> bool:
        described = await asyncio.gather(*(h.describe() for h in [*low, urgent]))
        return all(d.raw_description.pending_activities for d in described)

    # The workflows run first, so all thirteen sends wait on the email queue (a backlog,
    # the urgent one added last); then its worker starts. With an SMTP rate limit the
    # workflow worker makes no local first attempt: every send goes through the queue.
    queued = on_the_email_queue(settings)
    async with running_worker(client, queued, pool, ["workflows", "default"]):
        await eventually(all_waiting_for_smtp)
        # One send at a time, so the order of the messages is the order of dispatch.
        email_worker = Worker(
            client,
            task_queue=queues.named(queues.EMAIL, settings.task_queue_prefix),
            activities=activities_by_queue(settings, pool)[queues.EMAIL],
            max_concurrent_activities=1,
        )
        async with email_worker:
            await urgent.result()
            sent_before_urgent = len(smtp_sink.messages()) - 1
            await asyncio.gather(*(handle.result() for handle in low))
    order = [message["To"] for message in smtp_sink.messages()]
    assert len(order) == 13
    # In arrival order it would be the last of thirteen; the server hands it out among the
    # first three (the matcher may have read a couple of older tasks before it arrived).
    assert order.index("urgent@example.com") <= 2, order
    assert sent_before_urgent <= 2
