"""The bare engine: no-op workflows of the two shapes `make bench` measures Offload against.

Both take the same `EmailJob` payload as `SendEmailWorkflow` and run one no-op activity
with the same timeouts and retry policy, so what they cost is Temporal's own work:

- `FastBareWorkflow`, the floor: one local no-op activity, the workflow started eagerly
  from the client its worker runs on, so the job is one workflow task handed back in the
  start's answer. Offload's email job is held to this one.
- `BareWorkflow`, the email job's shape before the fast path: one no-op activity on the
  sibling email queue, three trips through the server's matching.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from offload import queues
    from offload.models import EmailJob
    from workflows.policies import retry_policy


@activity.defn
async def bare_noop(job: EmailJob) -> None:
    """Nothing: the engine's cost of one activity is all that is left."""


@workflow.defn
class BareWorkflow:
    """One no-op activity on the email queue, as `send_email` was scheduled before the fast path."""

    @workflow.run
    async def run(self, job: EmailJob) -> None:
        await workflow.execute_activity(
            bare_noop,
            job,
            task_queue=queues.sibling(workflow.info().task_queue, queues.EMAIL),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=retry_policy(job.retry),
        )


@workflow.defn
class FastBareWorkflow:
    """One local no-op activity, as `SendEmailWorkflow` runs its first attempt."""

    @workflow.run
    async def run(self, job: EmailJob) -> None:
        await workflow.execute_local_activity(
            bare_noop,
            job,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
