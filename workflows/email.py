"""SendEmailWorkflow: one email job, its activity retried with exponential backoff.

A send that fails for good is dead-lettered (`run_job`) before the job fails.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from offload import queues
    from offload.models import EmailJob, EmailResult
    from workflows.dead_letters import run_job
    from workflows.policies import retry_policy


@workflow.defn
class SendEmailWorkflow:
    """Send one email; the workflow id `email-<idempotency key>` makes queueing it idempotent."""

    @workflow.run
    async def run(self, job: EmailJob) -> EmailResult:
        return await run_job(
            "email",
            job,
            lambda: workflow.execute_activity_method(
                EmailActivities.send_email,
                job,
                task_queue=queues.sibling(workflow.info().task_queue, queues.EMAIL),
                # One SMTP conversation; the timeout bounds a server that stops answering.
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=retry_policy(job.retry),
            ),
        )
