"""GenerateReportWorkflow: plan a report, aggregate its chunks in parallel, finalise, email.

Planning and finalising are short database steps: they run as local activities in the
workflow worker, inside the workflow tasks that start and finish the chunks, so the report
pays no trip through the default queue and no workflow task to hear of their end. The
chunks are long and heavy, heartbeat their cursor and stay regular activities on the
reports queue, all of them scheduled in one workflow task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.reports import ReportActivities
    from offload import queues
    from offload.models import (
        EmailJob,
        ReportChunk,
        ReportChunkInput,
        ReportChunkResult,
        ReportFinalizeInput,
        ReportJob,
        ReportPlan,
        ReportProgress,
        ReportResult,
        ReportStatus,
    )
    from workflows.dead_letters import local_activity_failure, run_job
    from workflows.email import SendEmailWorkflow
    from workflows.policies import retry_policy

# Runs started before plan and finalize were local activities scheduled them on the default
# queue; their histories keep replaying that way.
LOCAL_PLAN_AND_FINALIZE = "report-local-plan-and-finalize"

ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")


@workflow.defn
class GenerateReportWorkflow:
    """One report, id `report-<report id>`; its `progress` query answers while it runs."""

    # The name of its job kind: `offload/kinds.py` and `run_job` both read it.
    KIND = "report"

    def __init__(self) -> None:
        self._report_id = ""
        self._status: ReportStatus = "planning"
        self._plan: ReportPlan | None = None
        self._done: dict[int, ReportChunkResult] = {}
        self._started_at = workflow.now()
        self._last_done_at = self._started_at
        self._result: ReportResult | None = None
        # The attempts of a local step that failed for good, for its dead-letter entry.
        self._local_attempts = 0

    @workflow.run
    async def run(self, job: ReportJob) -> ReportResult:
        return await run_job(
            self.KIND, job, lambda: self.generate(job), lambda: self._local_attempts
        )

    async def generate(self, job: ReportJob) -> ReportResult:
        """The whole job as one awaitable (so a failure path can wrap it in one line)."""
        self._report_id = job.report_id
        self._started_at = job.started_at or workflow.now()
        self._done = {c.index: c for c in job.done_chunks}
        own_queue = workflow.info().task_queue
        policy = retry_policy(job.retry)
        local = workflow.patched(LOCAL_PLAN_AND_FINALIZE)

        plan = job.plan
        if plan is None:
            plan = await self.step(
                local, ReportActivities.plan_report, job, timedelta(minutes=2), policy
            )
        self._plan = plan
        self._status = "running"

        pending = [c for c in plan.chunks if c.index not in self._done]
        this_run, later = pending[: job.chunks_per_run], pending[job.chunks_per_run :]
        slots = asyncio.Semaphore(job.max_parallel_chunks)

        async def aggregate(chunk: ReportChunk) -> None:
            async with slots:
                done = await workflow.execute_activity_method(
                    ReportActivities.aggregate_report_chunk,
                    ReportChunkInput(report_id=job.report_id, user_id=job.user_id, chunk=chunk),
                    task_queue=queues.sibling(own_queue, queues.REPORTS),
                    # A dead worker is noticed by the heartbeat timeout, not this one.
                    start_to_close_timeout=timedelta(hours=1),
                    heartbeat_timeout=timedelta(seconds=job.heartbeat_timeout_seconds),
                    retry_policy=policy,
                )
            self._done[done.index] = done
            self._last_done_at = workflow.now()

        await asyncio.gather(*(aggregate(c) for c in this_run))
        if later:
            # The history stays bounded: the next run gets the plan and the finished chunks.
            workflow.continue_as_new(
                job.model_copy(
                    update={
                        "plan": plan,
                        "done_chunks": sorted(self._done.values(), key=lambda c: c.index),
                        "started_at": self._started_at,
                    }
                )
            )

        self._status = "finalising"
        result = await self.step(
            local,
            ReportActivities.finalize_report,
            ReportFinalizeInput(
                report_id=job.report_id,
                user_id=job.user_id,
                start=job.start,
                end=job.end,
                chunks=len(plan.chunks),
            ),
            timedelta(minutes=10),
            policy,
        )

        self._status = "emailing"
        email = EmailJob(
            to=plan.agent_email,
            template="report-ready",
            data={
                "name": plan.agent_name,
                "report_id": job.report_id,
                "start": job.start.isoformat(),
                "end": job.end.isoformat(),
                "total_leads": result.total_leads,
                "file": result.file,
            },
            idempotency_key=f"report-ready-{job.report_id}",
            retry=job.retry,
        )
        sent = await workflow.execute_child_workflow(
            SendEmailWorkflow.run, email, id=email.workflow_id
        )
        self._result = result.model_copy(
            update={
                "rows_read": sum(c.rows for c in self._done.values()),
                "started_at": self._started_at,
                "finished_at": workflow.now(),
                "email_message_id": sent.message_id,
            }
        )
        self._status = "done"
        return self._result

    async def step(
        self,
        local: bool,
        activity: Callable[[ReportActivities, ArgT], Awaitable[ResultT]],
        arg: ArgT,
        start_to_close: timedelta,
        policy: RetryPolicy,
    ) -> ResultT:
        """A short step: a local activity, or (runs from before) an activity on the default queue.

        A local activity retries in the worker by the same policy; a worker lost meanwhile
        loses its workflow task, and the worker that takes the task over runs the step again.
        """
        if not local:
            return await workflow.execute_activity_method(
                activity,
                arg,
                task_queue=queues.sibling(workflow.info().task_queue, queues.DEFAULT),
                start_to_close_timeout=start_to_close,
                retry_policy=policy,
            )
        try:
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=start_to_close, retry_policy=policy
            )
        except (ApplicationError, TimeoutError) as err:
            # A local activity does not tell the workflow its attempt number: an error no
            # retry heals counts one attempt, any other all the policy allowed.
            healable = not (
                isinstance(err, ApplicationError)
                and (err.non_retryable or err.type in (policy.non_retryable_error_types or ()))
            )
            self._local_attempts = policy.maximum_attempts if healable else 1
            raise local_activity_failure(activity.__name__) from err

    @workflow.query
    def progress(self) -> ReportProgress:
        """Chunks done and total, rows read, when it started and when it should finish."""
        total = len(self._plan.chunks) if self._plan else 0
        done = len(self._done)
        eta = None
        if self._result is not None:
            eta = self._result.finished_at
        elif total and done:
            eta = self._started_at + (self._last_done_at - self._started_at) * total / done
        return ReportProgress(
            report_id=self._report_id,
            status=self._status,
            chunks_done=done,
            chunks_total=total,
            rows_read=sum(c.rows for c in self._done.values()),
            estimated_rows=self._plan.estimated_rows if self._plan else 0,
            started_at=self._started_at,
            eta=eta,
            result=self._result,
        )
