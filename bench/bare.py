"""The bare engine: a one-activity no-op workflow, the baseline `make bench` measures against.

It takes the same `EmailJob` payload as `SendEmailWorkflow` and calls one activity on the
sibling email queue with the same timeouts and retry policy, but the activity does
nothing: what it costs is Temporal's own round trips, which Offload cannot avoid.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from offload import queues
    from offload.models import EmailJob
    from workflows.policies import retry_policy


@activity.defn
async def bare_noop(job: EmailJob) -> None:
    """Nothing: the engine's cost of one activity is all that is left."""


@workflow.defn
class BareWorkflow:
    """One no-op activity, scheduled as `SendEmailWorkflow` schedules `send_email`."""

    @workflow.run
    async def run(self, job: EmailJob) -> None:
        await workflow.execute_activity(
            bare_noop,
            job,
            task_queue=queues.sibling(workflow.info().task_queue, queues.EMAIL),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=retry_policy(job.retry),
        )
