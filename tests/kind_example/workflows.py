"""The kind's workflow (in Offload: `workflows/ping.py`): deterministic, light imports only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from offload import queues
    from tests.kind_example.activities import PingActivities
    from tests.kind_example.models import PingJob, PingResult
    from workflows.dead_letters import run_job
    from workflows.policies import retry_policy


@workflow.defn
class PingWorkflow:
    """Ping one host; the workflow id `ping-<ping id>` makes queueing it idempotent."""

    # The name of its job kind: its declaration (`JobKind`) and `run_job` both read it.
    KIND = "ping"

    @workflow.run
    async def run(self, job: PingJob) -> PingResult:
        # `run_job` dead-letters the job when its activity fails for good.
        return await run_job(
            self.KIND,
            job,
            lambda: workflow.execute_activity_method(
                PingActivities.ping_host,
                job,
                task_queue=queues.sibling(workflow.info().task_queue, queues.DEFAULT),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=retry_policy(job.retry),
            ),
        )
