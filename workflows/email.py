"""SendEmailWorkflow: one email job, its activity retried with exponential backoff.

A send that fails for good is dead-lettered (`run_job`) before the job fails; while the
email kind is paused the job waits (`run_unless_paused`); a cancelled job lets a send in
progress finish rather than leave it half done.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from offload import queues
    from offload.models import EmailJob, EmailResult
    from workflows.dead_letters import run_job
    from workflows.pause import run_unless_paused

# Runs started before cancellation waited for the send stopped waiting for it (TRY_CANCEL).
CANCEL_WAITS_FOR_SEND = "email-cancel-waits-for-send"


@workflow.defn
class SendEmailWorkflow:
    """Send one email; the workflow id `email-<idempotency key>` makes queueing it idempotent."""

    @workflow.run
    async def run(self, job: EmailJob) -> EmailResult:
        # Cancelled while an attempt is on the wire, the job waits for that attempt to end:
        # the message is sent and logged, or not sent at all, and the job says which.
        # Between attempts (waiting to retry, or paused) a cancel takes effect at once.
        cancellation = (
            ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if workflow.patched(CANCEL_WAITS_FOR_SEND)
            else ActivityCancellationType.TRY_CANCEL
        )
        return await run_job(
            "email",
            job,
            lambda: run_unless_paused(
                "email",
                job.retry,
                lambda retry: workflow.execute_activity_method(
                    EmailActivities.send_email,
                    job,
                    task_queue=queues.sibling(workflow.info().task_queue, queues.EMAIL),
                    # One SMTP conversation; the timeout bounds a server that stops answering.
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=retry,
                    cancellation_type=cancellation,
                ),
            ),
        )
