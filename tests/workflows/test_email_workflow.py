"""SendEmailWorkflow on the time-skipping server, with its activities stubbed under their names.

A job that fails for good is dead-lettered after exactly its last attempt.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
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


async def run_with_stub(
    env: WorkflowEnvironment,
    prefix: str,
    stub: object,
    job: EmailJob,
    dead_letters: list[tuple[DeadLetterEntry, datetime]] | None = None,
) -> EmailResult:
    """Run the job with `send_email` stubbed; dead-lettered entries land in `dead_letters`."""
    recorded = dead_letters if dead_letters is not None else []

    @activity.defn(name="record_dead_letter")
    async def record_dead_letter(entry: DeadLetterEntry) -> None:
        recorded.append((entry, await env.get_current_time()))

    workflow_queue = queues.named(queues.WORKFLOWS, prefix)
    async with (
        Worker(env.client, task_queue=workflow_queue, workflows=[SendEmailWorkflow]),
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
        return EmailResult(status="sent", message_id="<m@x>", to=job.to, sent_at=datetime.now(UTC))

    result = await run_with_stub(
        time_skipping_env, task_queue_prefix, flaky_send_email, email_job()
    )

    assert result.status == "sent"
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
    assert [n for n, _ in attempts] == [1, 2, 3, 4, 5, 6]
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
