"""The scheduled jobs: hourly and daily maintenance and the daily digest, one workflow each.

Each takes its window from the time its schedule meant it to run
(`TemporalScheduledStartTime`), so a late, caught-up or backfilled run covers its own window.
Each `run` is one call to the job's body, so the whole job can be wrapped in one line.
Each class names its job kind in `KIND`, which `offload/kinds.py` and `run_job` both read.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.digest import DigestActivities
    from activities.leads import LeadActivities
    from activities.market import MarketActivities
    from activities.sessions import SessionActivities
    from offload import queues
    from offload.models import (
        DailyReportResult,
        DigestBatch,
        DigestBatchResult,
        DigestPlan,
        DigestResult,
        LeadScoreBatch,
        LeadScoreResult,
        MarketRefresh,
        MarketRefreshResult,
        RecipientFailure,
        ReportJob,
        ReportTuning,
        ScheduledRun,
        SessionCleanup,
        SessionCleanupResult,
    )
    from offload.windows import SCHEDULED_START_TIME, previous_day, previous_hour
    from workflows.dead_letters import dead_letter, describe_failure, run_job
    from workflows.policies import retry_policy

SCHEDULED_START = SearchAttributeKey.for_datetime(SCHEDULED_START_TIME)
# The report job is built on its own; it is started by name so this module does not import it.
REPORT_WORKFLOW = "GenerateReportWorkflow"
# Reports started at once by one daily-report run; the reports queue bounds the work itself.
REPORTS_AT_ONCE = 20
# The dead-letter kind of one recipient's digest (a whole run's is `send-digest-emails`).
DIGEST_KIND = "digest"
# Digests retry and dead-letter each failed recipient alone (histories before it replay).
DIGEST_PER_RECIPIENT = "digest-per-recipient"
# A batch heartbeats after every few rows; a silent worker is given up on after this.
HEARTBEAT = timedelta(seconds=60)


def scheduled_at(job: ScheduledRun) -> datetime:
    """The time this run was scheduled for; for a run started by hand, its input or now."""
    found = workflow.info().typed_search_attributes.get(SCHEDULED_START)
    if found is not None:
        return found
    return job.scheduled_time or workflow.now()


def pinned(job: ScheduledRun) -> ScheduledRun:
    """`job` with its scheduled time written in, so a dead-letter redrive covers the same window."""
    return job.model_copy(update={"scheduled_time": scheduled_at(job)})


def queue(name: str) -> str:
    return queues.sibling(workflow.info().task_queue, name)


@workflow.defn
class SyncLeadScoresWorkflow:
    """`sync-lead-scores`: rescore the leads updated in the hour before the scheduled time."""

    KIND = "sync-lead-scores"

    @workflow.run
    async def run(self, job: ScheduledRun) -> LeadScoreResult:
        job = pinned(job)
        return await run_job(self.KIND, job, lambda: self.sync(job))

    async def sync(self, job: ScheduledRun) -> LeadScoreResult:
        return await workflow.execute_activity_method(
            LeadActivities.score_leads,
            LeadScoreBatch(window=previous_hour(scheduled_at(job)), batch_size=job.batch_size),
            task_queue=queue(queues.DEFAULT),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(job.retry),
        )


@workflow.defn
class CleanupExpiredSessionsWorkflow:
    """`cleanup-expired-sessions`: delete the sessions expired at the scheduled time."""

    KIND = "cleanup-expired-sessions"

    @workflow.run
    async def run(self, job: ScheduledRun) -> SessionCleanupResult:
        job = pinned(job)
        return await run_job(self.KIND, job, lambda: self.cleanup(job))

    async def cleanup(self, job: ScheduledRun) -> SessionCleanupResult:
        return await workflow.execute_activity_method(
            SessionActivities.delete_expired_sessions,
            SessionCleanup(cutoff=scheduled_at(job), batch_size=job.batch_size),
            task_queue=queue(queues.DEFAULT),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(job.retry),
        )


def daily_report_id(day: date, agent_id: int) -> str:
    """The report id of an agent's daily report: the same for every run of that day."""
    return f"daily-{day}-agent-{agent_id}"


@workflow.defn
class DailyReportWorkflow:
    """`daily-report`: yesterday's leads report for each agent, as report jobs."""

    KIND = "daily-report"

    @workflow.run
    async def run(self, job: ScheduledRun) -> DailyReportResult:
        job = pinned(job)
        return await run_job(self.KIND, job, lambda: self.report(job))

    async def report(self, job: ScheduledRun) -> DailyReportResult:
        day, _ = previous_day(scheduled_at(job), job.time_zone)
        agents = await workflow.execute_activity_method(
            LeadActivities.list_agent_ids,
            task_queue=queue(queues.DEFAULT),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=retry_policy(job.retry),
        )
        result = DailyReportResult(day=day)
        failures: list[str] = []
        ids = agents.agent_ids
        for first in range(0, len(ids), REPORTS_AT_ONCE):
            handles = []
            for agent_id in ids[first : first + REPORTS_AT_ONCE]:
                report = ReportJob(
                    report_id=daily_report_id(day, agent_id),
                    user_id=agent_id,
                    start=day,
                    end=day,
                    retry=job.retry,
                    **ReportTuning.of(job).model_dump(),
                )
                try:
                    handle = await workflow.start_child_workflow(
                        REPORT_WORKFLOW,
                        report,
                        id=report.workflow_id,
                        task_queue=workflow.info().task_queue,
                        # A report that completed (an earlier run of this day) is not redone.
                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                        parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    )
                except WorkflowAlreadyStartedError:
                    result.already_started.append(report.report_id)
                    continue
                result.started.append(report.report_id)
                handles.append((report.report_id, handle))
            outcomes = await asyncio.gather(*(h for _, h in handles), return_exceptions=True)
            for (report_id, _), outcome in zip(handles, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failures.append(report_id)
        if failures:
            raise ApplicationError(
                f"{len(failures)} daily report(s) failed: {', '.join(failures[:10])}",
                type="DailyReportFailed",
            )
        return result


@workflow.defn
class RefreshMarketDataWorkflow:
    """`refresh-market-data`: fetch the feed and store it as yesterday's market data."""

    KIND = "refresh-market-data"

    @workflow.run
    async def run(self, job: ScheduledRun) -> MarketRefreshResult:
        job = pinned(job)
        return await run_job(self.KIND, job, lambda: self.refresh(job))

    async def refresh(self, job: ScheduledRun) -> MarketRefreshResult:
        day, _ = previous_day(scheduled_at(job), job.time_zone)
        return await workflow.execute_activity_method(
            MarketActivities.refresh_market_data,
            MarketRefresh(day=day),
            task_queue=queue(queues.DEFAULT),
            # One GET and one upsert; the HTTP client's own timeout is shorter.
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=retry_policy(job.retry),
        )


@workflow.defn
class SendDigestEmailsWorkflow:
    """`send-digest-emails`: each subscribed agent's new leads, once per agent and day."""

    KIND = "send-digest-emails"

    @workflow.run
    async def run(self, job: ScheduledRun) -> DigestResult:
        job = pinned(job)
        return await run_job(self.KIND, job, lambda: self.send(job))

    async def send(self, job: ScheduledRun) -> DigestResult:
        day, window = previous_day(scheduled_at(job), job.time_zone)
        plan = DigestPlan(day=day, until=window.end, only_agent_ids=job.agent_ids)
        recipients = await workflow.execute_activity_method(
            DigestActivities.plan_digest,
            plan,
            task_queue=queue(queues.DEFAULT),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=retry_policy(job.retry),
        )
        ids = recipients.agent_ids
        batches = [ids[i : i + job.batch_size] for i in range(0, len(ids), job.batch_size)]
        slots = asyncio.Semaphore(job.parallel_batches)

        async def send_batch(batch: DigestBatch) -> DigestBatchResult:
            async with slots:
                return await workflow.execute_activity_method(
                    DigestActivities.send_digest_batch,
                    batch,
                    task_queue=queue(queues.EMAIL),
                    start_to_close_timeout=timedelta(minutes=30),
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=retry_policy(job.retry),
                )

        async def retry_recipient(failure: RecipientFailure) -> DigestBatchResult | None:
            """Retry a deferred recipient alone; dead-letter one that fails for good."""
            error_type, message = failure.error_type, failure.message
            if failure.retryable:
                alone = DigestBatch(plan=plan, agent_ids=[failure.agent_id], raise_failures=True)
                try:
                    return await send_batch(alone)
                except ActivityError as err:
                    error_type, message = describe_failure(err)
            # Redriven, this entry sends that agent's digest of the day, and nobody else's.
            await dead_letter(
                DIGEST_KIND,
                job.model_copy(update={"agent_ids": [failure.agent_id]}),
                error_type,
                message,
                suffix=f"-agent-{failure.agent_id}",
            )
            return None

        results = await asyncio.gather(
            *(send_batch(DigestBatch(plan=plan, agent_ids=b)) for b in batches)
        )
        failures = [f for r in results for f in r.failures]
        dead_lettered = 0
        if failures and workflow.patched(DIGEST_PER_RECIPIENT):
            retried = await asyncio.gather(*(retry_recipient(f) for f in failures))
            results.extend(r for r in retried if r is not None)
            dead_lettered = sum(r is None for r in retried)
        return DigestResult(
            day=day,
            agents=len(ids),
            sent=sum(r.sent for r in results),
            already_sent=sum(r.already_sent for r in results),
            no_leads=sum(r.no_leads for r in results),
            refused=sum(r.refused for r in results),
            dead_lettered=dead_lettered,
        )
