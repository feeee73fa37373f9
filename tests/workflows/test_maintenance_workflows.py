"""The scheduled workflows on the time-skipping server, activities and the report job stubbed.

Started by hand (no schedule), a run takes its window from `scheduled_time`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from temporalio import activity, workflow
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
