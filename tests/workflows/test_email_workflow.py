"""SendEmailWorkflow on the time-skipping server, with its activities stubbed under their names.

The first attempt runs as the local activity `try_send_email` in the workflow worker, the
rest as `send_email` on the email queue, on the one backoff schedule. A job that fails for
good is dead-lettered after exactly its last attempt.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from offload import queues
from offload.models import DeadLetterEntry, EmailJob, EmailResult, RetryConfig
from workflows.email import SendEmailWorkflow

RETRY = RetryConfig(
    initial_interval_seconds=1,
    backoff_coefficient=2,
    maximum_interval_seconds=5,
    maximum_attempts=6,
)


def email_job() -> EmailJob:
    return EmailJob(
        to="ada@example.com",
        template="lead-confirmation",
        data={"name": "Ada", "property": "12 Harbour View"},
        idempotency_key=str(uuid.uuid4()),
        retry=RETRY,
    )


def sent(job: EmailJob, message_id: str) -> EmailResult:
    return EmailResult(status="sent", message_id=message_id, to=job.to, sent_at=datetime.now(UTC))


def counted_send_email(attempts: list[int], message_id: str) -> object:
    """A `send_email` stub that notes each attempt's number in `attempts` and sends."""

    @activity.defn(name="send_email")
    async def send_email(job: EmailJob) -> EmailResult:
        attempts.append(activity.info().attempt)
        return sent(job, message_id)

    return send_email


async def run_with_stub(
    env: WorkflowEnvironment,
    prefix: str,
    stub: object,
    job: EmailJob,
    dead_letters: list[tuple[DeadLetterEntry, datetime]] | None = None,
    first_attempt: Callable[[EmailJob], Awaitable[EmailResult | None]] | None = None,
) -> EmailResult:
    """Run the job with `send_email` stubbed; dead-lettered entries land in `dead_letters`.

    The stub is the local first attempt too, unless `first_attempt` stands in for it.
    """
    recorded = dead_letters if dead_letters is not None else []

    @activity.defn(name="try_send_email")
    async def try_send_email(job: EmailJob) -> EmailResult | None:
        if first_attempt is not None:
            return await first_attempt(job)
        return await stub(job)  # type: ignore[operator,no-any-return]

    @activity.defn(name="record_dead_letter")
    async def record_dead_letter(entry: DeadLetterEntry) -> None:
        recorded.append((entry, await env.get_current_time()))

    workflow_queue = queues.named(queues.WORKFLOWS, prefix)
    async with (
        Worker(
            env.client,
            task_queue=workflow_queue,
            workflows=[SendEmailWorkflow],
            activities=[try_send_email],
        ),
        Worker(env.client, task_queue=queues.named(queues.EMAIL, prefix), activities=[stub]),
        Worker(
            env.client,
            task_queue=queues.named(queues.DEFAULT, prefix),
            activities=[record_dead_letter],
        ),
    ):
        return await env.client.execute_workflow(
            SendEmailWorkflow.run, job, id=job.workflow_id, task_queue=workflow_queue
        )


async def test_fails_n_times_then_succeeds_with_exponential_backoff(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    scheduled: list[datetime] = []

    @activity.defn(name="send_email")
    async def flaky_send_email(job: EmailJob) -> EmailResult:
        # The server's clock: with time skipping it jumps over each backoff.
        scheduled.append(await time_skipping_env.get_current_time())
        if len(scheduled) <= 4:
            raise RuntimeError("451 try again later")
        return sent(job, "<m@x>")

    dead: list[tuple[DeadLetterEntry, datetime]] = []
    result = await run_with_stub(
        time_skipping_env, task_queue_prefix, flaky_send_email, email_job(), dead
    )

    assert result.status == "sent"
    assert dead == []  # failed attempts that end in success are not dead letters
    assert len(scheduled) == 5
    gaps = [b - a for a, b in itertools.pairwise(scheduled)]
    # 1 s, then doubling, capped at the 5 s maximum interval.
    expected = [timedelta(seconds=s) for s in (1, 2, 4, 5)]
    for gap, want in zip(gaps, expected, strict=True):
        assert abs(gap - want) < timedelta(milliseconds=300), (gaps, expected)


async def test_gives_up_after_the_configured_attempts(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    attempts: list[tuple[int, datetime]] = []
    dead: list[tuple[DeadLetterEntry, datetime]] = []

    @activity.defn(name="send_email")
    async def failing_send_email(job: EmailJob) -> EmailResult:
        attempts.append((activity.info().attempt, await time_skipping_env.get_current_time()))
        raise RuntimeError("451 try again later")

    job = email_job()
    with pytest.raises(WorkflowFailureError) as caught:
        await run_with_stub(time_skipping_env, task_queue_prefix, failing_send_email, job, dead)
    # The local first attempt, then the five left on the email queue.
    assert [n for n, _ in attempts] == [1, 1, 2, 3, 4, 5]
    assert isinstance(caught.value.cause, ActivityError)
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
    for gap, want in zip(gaps, (1, 2, 4, 5, 5), strict=True):
        assert abs(gap - timedelta(seconds=want)) < timedelta(milliseconds=300), gaps
    # Dead-lettered once, after the last attempt and not before.
    [(entry, recorded_at)] = dead
    assert recorded_at >= attempts[-1][1]
    assert recorded_at - attempts[-1][1] < timedelta(seconds=1)
    assert entry.kind == "email"
    assert entry.workflow_id == job.workflow_id
    assert entry.workflow_type == "SendEmailWorkflow"
    assert EmailJob.model_validate(entry.input) == job
    assert (entry.error_type, entry.error_message) == ("RuntimeError", "451 try again later")
    assert entry.started_event_id > 0
    assert entry.attempts == 1  # the local attempt, before the queued activity's five


async def test_a_non_retryable_failure_stops_at_once(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    attempts: list[int] = []
    dead: list[tuple[DeadLetterEntry, datetime]] = []

    @activity.defn(name="send_email")
    async def refused_send_email(job: EmailJob) -> EmailResult:
        attempts.append(activity.info().attempt)
        raise ApplicationError("550 no such user", type="SmtpPermanentError", non_retryable=True)

    job = email_job()
    with pytest.raises(WorkflowFailureError) as caught:
        await run_with_stub(time_skipping_env, task_queue_prefix, refused_send_email, job, dead)
    assert attempts == [1]
    [(entry, _)] = dead
    assert (entry.error_type, entry.error_message) == ("SmtpPermanentError", "550 no such user")
    assert entry.workflow_id == job.workflow_id
    cause = caught.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "SmtpPermanentError"


async def test_an_email_that_goes_through_is_one_local_activity_and_no_queued_one(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    queued: list[int] = []

    async def sent_here(job: EmailJob) -> EmailResult:
        return sent(job, "<l@x>")

    job = email_job()
    stub = counted_send_email(queued, "<m@x>")
    result = await run_with_stub(
        time_skipping_env, task_queue_prefix, stub, job, first_attempt=sent_here
    )
    assert (result.status, result.message_id) == ("sent", "<l@x>")
    assert queued == []
    history = await time_skipping_env.client.get_workflow_handle(job.workflow_id).fetch_history()
    types = {EventType.Name(e.event_type) for e in history.events}
    assert "EVENT_TYPE_MARKER_RECORDED" in types
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in types
    # One workflow task: started, the local activity, completed.
    assert (
        sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED for e in history.events) == 1
    )


async def test_a_new_email_job_records_one_version_marker(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    """Each `workflow.patched` a new run calls records a marker and upserts the
    `TemporalChangeVersion` search attribute: two more events, and a visibility write, per
    job. A new run takes today's path under one patch id, whatever older ids its code keeps."""

    async def sent_here(job: EmailJob) -> EmailResult:
        return sent(job, "<l@x>")

    job = email_job()
    stub = counted_send_email([], "<m@x>")
    await run_with_stub(time_skipping_env, task_queue_prefix, stub, job, first_attempt=sent_here)
    history = await time_skipping_env.client.get_workflow_handle(job.workflow_id).fetch_history()
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert sorted(markers) == ["core_local_activity", "core_patch"]


async def test_a_worker_with_a_rate_limit_sends_on_the_queue(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    queued: list[int] = []

    async def declined(job: EmailJob) -> None:
        return None

    stub = counted_send_email(queued, "<q@x>")
    result = await run_with_stub(
        time_skipping_env, task_queue_prefix, stub, email_job(), first_attempt=declined
    )
    assert (result.status, result.message_id) == ("sent", "<q@x>")
    assert queued == [1]
