"""Offload's own job metrics, exported beside the SDK's on the worker's Prometheus endpoint.

A workflow interceptor counts every job kind the same way, so no job kind writes metrics
code: `offload_jobs_started_total`, `offload_jobs_succeeded_total` and
`offload_jobs_dead_lettered_total` (failures that reached the dead-letter queue) and
`offload_jobs_failed_total` (failures that did not) by `kind` (the workflow type), and the
`offload_job_enqueue_to_done_latency_seconds` histogram, from the start request to the end.
`workflow.metric_meter()` records nothing while a workflow replays, so a job that moves to
another worker is not counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from temporalio import workflow
from temporalio.common import MetricMeter
from temporalio.exceptions import CancelledError
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from workflows.dead_letters import is_dead_letter

STARTED = "offload_jobs_started"
SUCCEEDED = "offload_jobs_succeeded"
DEAD_LETTERED = "offload_jobs_dead_lettered"
FAILED = "offload_jobs_failed"
ENQUEUE_TO_DONE = "offload_job_enqueue_to_done_latency"


class _JobMetricsInbound(WorkflowInboundInterceptor):
    # The workflow types of the job kinds; others (the dead-letter queue) are not jobs.
    job_types: frozenset[str] = frozenset()

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        if info.workflow_type not in self.job_types:
            return await super().execute_workflow(input)
        meter = workflow.metric_meter().with_additional_attributes({"kind": info.workflow_type})
        if info.continued_run_id is None:
            meter.create_counter(STARTED, "jobs started").add(1)
        try:
            result = await super().execute_workflow(input)
        except (workflow.ContinueAsNewError, CancelledError, workflow.NondeterminismError):
            raise
        except Exception as err:
            # The count agrees with the queue: a failure `run_job` dead-letters is counted
            # dead-lettered; any other (a daily report naming the reports that failed, which
            # are dead letters of their own) is counted failed.
            if is_dead_letter(err):
                meter.create_counter(
                    DEAD_LETTERED, "jobs that failed into the dead-letter queue"
                ).add(1)
            else:
                meter.create_counter(FAILED, "jobs that failed without a dead letter").add(1)
            self._record_latency(meter, info)
            raise
        meter.create_counter(SUCCEEDED, "jobs that completed").add(1)
        self._record_latency(meter, info)
        return result

    @staticmethod
    def _record_latency(meter: MetricMeter, info: workflow.Info) -> None:
        latency = workflow.now() - info.workflow_start_time
        meter.create_histogram_timedelta(
            ENQUEUE_TO_DONE, "from queueing a job to its end", "duration"
        ).record(latency)


class JobMetricsInterceptor(Interceptor):
    """Counts and times every job workflow a worker runs (give it to `Worker(interceptors=)`).

    Args:
        job_types: the workflow types that are jobs (those of `offload.kinds.KINDS`).
    """

    def __init__(self, job_types: Iterable[str]) -> None:
        self._inbound = type(
            "JobMetricsInbound", (_JobMetricsInbound,), {"job_types": frozenset(job_types)}
        )

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return self._inbound
