"""The scheduled workflows on the time-skipping server, activities and the report job stubbed.

Started by hand (no schedule), a run takes its window from `scheduled_time`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from offload import queues
from offload.models import (
    AgentList,
    DailyReportResult,
    LeadScoreBatch,
    LeadScoreResult,
    ReportJob,
    ScheduledRun,
)
from workers.metrics import JobMetricsInterceptor
from workflows.maintenance import DailyReportWorkflow, SyncLeadScoresWorkflow


@workflow.defn(name="GenerateReportWorkflow")
class StubReportWorkflow:
    """Stands in for the report job, which is built and tested on its own."""

    @workflow.run
    async def run(self, job: ReportJob) -> ReportJob:
        return job


@activity.defn(name="list_agent_ids")
async def two_agents() -> AgentList:
    return AgentList(agent_ids=[7, 9])


async def test_daily_report_starts_yesterdays_report_per_agent_once(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    client = time_skipping_env.client
    workflow_queue = queues.named(queues.WORKFLOWS, task_queue_prefix)
    # Midnight in New York (05:00 UTC): "yesterday" is the 27th there.
    job = ScheduledRun(
        scheduled_time=datetime(2026, 11, 28, 5, tzinfo=UTC), time_zone="America/New_York"
    )
    async with (
        Worker(
            client, task_queue=workflow_queue, workflows=[DailyReportWorkflow, StubReportWorkflow]
        ),
        Worker(
            client,
            task_queue=queues.named(queues.DEFAULT, task_queue_prefix),
            activities=[two_agents],
        ),
    ):
        first = await client.execute_workflow(
            DailyReportWorkflow.run, job, id=str(uuid.uuid4()), task_queue=workflow_queue
        )
        second = await client.execute_workflow(
            DailyReportWorkflow.run, job, id=str(uuid.uuid4()), task_queue=workflow_queue
        )
    day = date(2026, 11, 27)
    assert first == DailyReportResult(
        day=day, started=[f"daily-{day}-agent-7", f"daily-{day}-agent-9"]
    )
    # Run again for the same day: the reports exist, nothing is started twice.
    assert second == DailyReportResult(day=day, already_started=first.started)
    for agent_id in (7, 9):
        child = client.get_workflow_handle(
            f"report-daily-{day}-agent-{agent_id}", result_type=ReportJob
        )
        report = await child.result()
        assert (report.user_id, report.start, report.end) == (agent_id, day, day)


async def test_a_manual_sync_takes_its_window_from_its_input(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    seen: list[LeadScoreBatch] = []

    @activity.defn(name="score_leads")
    async def score_leads(batch: LeadScoreBatch) -> LeadScoreResult:
        seen.append(batch)
        return LeadScoreResult(window=batch.window)

    client = time_skipping_env.client
    workflow_queue = queues.named(queues.WORKFLOWS, task_queue_prefix)
    async with (
        Worker(client, task_queue=workflow_queue, workflows=[SyncLeadScoresWorkflow]),
        Worker(
            client,
            task_queue=queues.named(queues.DEFAULT, task_queue_prefix),
            activities=[score_leads],
        ),
    ):
        await client.execute_workflow(
            SyncLeadScoresWorkflow.run,
            ScheduledRun(scheduled_time=datetime(2026, 11, 28, 10, 0, tzinfo=UTC), batch_size=7),
            id=str(uuid.uuid4()),
            task_queue=workflow_queue,
        )
    [batch] = seen
    assert batch.batch_size == 7
    assert (batch.window.start.hour, batch.window.end.hour) == (9, 10)


@workflow.defn(name="GenerateReportWorkflow")
class FailingReportWorkflow:
    """A report job that fails for agent 9 (it has dead-lettered itself, in the real one)."""

    @workflow.run
    async def run(self, job: ReportJob) -> ReportJob:
        if job.user_id == 9:
            raise ApplicationError("no such agent", type="UnknownUser", non_retryable=True)
        return job


async def test_a_failed_daily_report_is_counted_failed_not_dead_lettered(
    time_skipping_env: WorkflowEnvironment, task_queue_prefix: str
) -> None:
    # The count must agree with the queue: the failed report is the dead letter (it
    # dead-lettered itself); the daily run that names it reaches no queue, so it is failed.
    metrics = MetricBuffer(1000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics))
    client = await Client.connect(
        time_skipping_env.client.service_client.config.target_host,
        runtime=runtime,
        data_converter=time_skipping_env.client.data_converter,
    )
    workflow_queue = queues.named(queues.WORKFLOWS, task_queue_prefix)
    # A day of its own: report ids are per day and agent, and the server is the session's.
    job = ScheduledRun(scheduled_time=datetime(2025, 3, 2, tzinfo=UTC))
    async with (
        Worker(
            client,
            task_queue=workflow_queue,
            workflows=[DailyReportWorkflow, FailingReportWorkflow],
            interceptors=[JobMetricsInterceptor(["DailyReportWorkflow", "GenerateReportWorkflow"])],
        ),
        Worker(
            client,
            task_queue=queues.named(queues.DEFAULT, task_queue_prefix),
            activities=[two_agents],
        ),
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                DailyReportWorkflow.run, job, id=str(uuid.uuid4()), task_queue=workflow_queue
            )
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "DailyReportFailed"
    counted = [
        (u.metric.name, u.attributes.get("kind"))
        for u in metrics.retrieve_updates()
        if u.metric.name.startswith("offload_jobs_") and u.value
    ]
    assert ("offload_jobs_dead_lettered", "DailyReportWorkflow") not in counted
    assert ("offload_jobs_failed", "DailyReportWorkflow") in counted
    # The report jobs run under the same interceptor: the failing one is counted failed too,
    # since this stub raises outside `run_job` (the real one dead-letters, and is counted so).
    assert ("offload_jobs_dead_lettered", "GenerateReportWorkflow") not in counted
