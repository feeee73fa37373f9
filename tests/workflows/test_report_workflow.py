"""GenerateReportWorkflow on the time-skipping server, its activities stubbed under their names."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.reports import split_window
from offload import queues
from offload.models import (
    DeadLetterEntry,
    EmailJob,
    EmailResult,
    ReportChunkInput,
    ReportChunkResult,
    ReportFinalizeInput,
    ReportJob,
    ReportPlan,
    ReportResult,
)
from workflows.email import SendEmailWorkflow
from workflows.reports import GenerateReportWorkflow


def plan_of(days: int) -> ReportPlan:
    """A plan of `days` one-day chunks from 2026-01-01, of 100 leads each."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return ReportPlan(
        chunks=split_window(start, start + timedelta(days=days), days),
        estimated_rows=100 * days,
        agent_name="Agent",
        agent_email="agent1@example.com",
    )


def finalized(task: ReportFinalizeInput) -> ReportResult:
    return ReportResult(
        report_id=task.report_id,
        file="/r.csv",
        total_leads=100 * task.chunks,
        average_score="50.00",
        top_source="web",
        chunks=task.chunks,
    )


def sent(job: EmailJob) -> EmailResult:
    return EmailResult(status="sent", message_id="<m@x>", to=job.to, sent_at=datetime.now(UTC))


def scheduled_activities(events: list[Any]) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_a_large_report_continues_as_new_without_running_a_chunk_twice_queueing_only_chunks(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    calls: Counter[str] = Counter()
    chunk_runs: Counter[int] = Counter()

    @activity.defn(name="plan_report")
    async def plan_report(job: ReportJob) -> ReportPlan:
        calls["plan"] += 1
        return plan_of(7)

    @activity.defn(name="aggregate_report_chunk")
    async def aggregate_report_chunk(task: ReportChunkInput) -> ReportChunkResult:
        chunk_runs[task.chunk.index] += 1
        return ReportChunkResult(index=task.chunk.index, rows=100, pages=2)

    @activity.defn(name="finalize_report")
    async def finalize_report(task: ReportFinalizeInput) -> ReportResult:
        calls["finalize"] += 1
        return finalized(task)

    @activity.defn(name="send_email")
    async def send_email(job: EmailJob) -> EmailResult:
        calls["email"] += 1
        return sent(job)

    @activity.defn(name="try_send_email")
    async def try_send_email(job: EmailJob) -> EmailResult:
        return await send_email(job)

    workflow_queue = queues.named(queues.WORKFLOWS, task_queue_prefix)
    job = ReportJob(
        report_id=uuid.uuid4().hex,
        user_id=1,
        start=date(2026, 1, 1),
        end=date(2026, 1, 7),
        chunks_per_run=3,
        max_parallel_chunks=2,
    )
    client = time_skipping_env.client
    async with (
        Worker(
            client,
            task_queue=workflow_queue,
            workflows=[GenerateReportWorkflow, SendEmailWorkflow],
            # Plan and finalize run as local activities, as does the email's first attempt.
            activities=[plan_report, finalize_report, try_send_email],
        ),
        Worker(
            client,
            task_queue=queues.named(queues.REPORTS, task_queue_prefix),
            activities=[aggregate_report_chunk],
        ),
        Worker(
            client,
            task_queue=queues.named(queues.EMAIL, task_queue_prefix),
            activities=[send_email],
        ),
    ):
        handle = await client.start_workflow(
            GenerateReportWorkflow.run, job, id=job.workflow_id, task_queue=workflow_queue
        )
        result = await handle.result()
        progress = await handle.query(GenerateReportWorkflow.progress)

    assert result.total_leads == 700
    assert result.rows_read == 700
    assert result.email_message_id == "<m@x>"
    assert calls == {"plan": 1, "finalize": 1, "email": 1}
    assert chunk_runs == dict.fromkeys(range(7), 1)
    # 7 chunks at 3 per run: two continue-as-new, and the progress carried through.
    assert progress.status == "done"
    assert (progress.chunks_done, progress.chunks_total, progress.rows_read) == (7, 7, 700)
    description = await handle.describe()
    assert description.run_id != handle.first_execution_run_id
    # Plan and finalize ran in the workflow worker (no worker polls the default queue here):
    # across the runs, only the chunks went through a queue.
    runs = [handle.first_execution_run_id, description.run_id]
    scheduled = [
        name
        for run_id in runs
        for name in scheduled_activities(
            [
                e
                async for e in client.get_workflow_handle(
                    job.workflow_id, run_id=run_id
                ).fetch_history_events()
            ]
        )
    ]
    assert "plan_report" not in scheduled and "finalize_report" not in scheduled
    assert scheduled.count("aggregate_report_chunk") >= 3


async def test_an_unknown_agent_fails_the_plan_for_good_and_the_report_is_dead_lettered(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    recorded: list[DeadLetterEntry] = []

    @activity.defn(name="plan_report")
    async def plan_report(job: ReportJob) -> ReportPlan:
        raise ApplicationError("no agent with id 9", type="UnknownUser", non_retryable=True)

    @activity.defn(name="record_dead_letter")
    async def record_dead_letter(entry: DeadLetterEntry) -> None:
        recorded.append(entry)

    workflow_queue = queues.named(queues.WORKFLOWS, task_queue_prefix)
    job = ReportJob(
        report_id=uuid.uuid4().hex, user_id=9, start=date(2026, 1, 1), end=date(2026, 1, 2)
    )
    client = time_skipping_env.client
    async with (
        Worker(
            client,
            task_queue=workflow_queue,
            workflows=[GenerateReportWorkflow],
            activities=[plan_report],
        ),
        Worker(
            client,
            task_queue=queues.named(queues.DEFAULT, task_queue_prefix),
            activities=[plan_report, record_dead_letter],
        ),
    ):
        handle = await client.start_workflow(
            GenerateReportWorkflow.run, job, id=job.workflow_id, task_queue=workflow_queue
        )
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 30)

    [entry] = recorded
    assert (entry.kind, entry.workflow_id, entry.error_type) == (
        "report",
        job.workflow_id,
        "UnknownUser",
    )
    assert entry.error_message == "no agent with id 9"
    assert entry.input["user_id"] == 9
    # No activity task to read the attempt from: the entry carries the local step's attempt.
    assert (entry.started_event_id, entry.attempts) == (0, 1)
