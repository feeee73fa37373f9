"""SendEmailWorkflow: one email job, its send retried with exponential backoff.

The fast path: the first attempt runs as a local activity in the workflow worker, in the
same workflow task that starts the job, so an email that goes through costs no trip
through the server's activity matching. A retryable failure of that attempt hands the job
to `send_email` on the email queue, with the rest of its attempts and the backoff it would
have had; a worker with an SMTP rate limit (`OFFLOAD_EMAIL_RATE_LIMIT_PER_SECOND`, which
holds across workers only on the queue), or a paused email kind, declines the local attempt
and the job goes to the queue at once. On the queue, while the email kind is paused the job
waits (`run_unless_paused`). A send that fails for good is dead-lettered (`run_job`) before
the job fails; a cancelled job lets a send in progress finish rather than leave it half done.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from offload import queues
    from offload.models import EmailJob, EmailResult, RetryConfig
    from workflows.dead_letters import local_activity_failure, run_job
    from workflows.pause import run_unless_paused
    from workflows.policies import after_first_attempt

# Today's path: a run that records this one id takes every change below. Each
# `workflow.patched` a run calls records a marker and upserts `TemporalChangeVersion`, two
# events and a visibility write per job, so a new run records only this id; the older ids
# are asked only by runs recorded without it (docs/operations.md, "Upgrading workflow code").
CURRENT = "send-email-2026-12"
# Runs started before cancellation waited for the send stopped waiting for it (TRY_CANCEL).
CANCEL_WAITS_FOR_SEND = "email-cancel-waits-for-send"
# Histories from before the fast path scheduled `send_email` on the queue first.
LOCAL_FIRST_ATTEMPT = "send-email-local-first-attempt"
# One SMTP conversation; the timeout bounds a server that stops answering.
SEND_TIMEOUT = timedelta(seconds=60)


@workflow.defn
class SendEmailWorkflow:
    """Send one email; the workflow id `email-<idempotency key>` makes queueing it idempotent."""

    # The name of its job kind: `offload/kinds.py` and `run_job` both read it.
    KIND = "email"

    def __init__(self) -> None:
        # Attempts made before the queued activity: the dead-letter entry counts them too.
        self.local_attempts = 0
        self.cancellation = ActivityCancellationType.TRY_CANCEL
        self.current = False

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the change `patch_id`: every change, for a run on today's
        path (`CURRENT`); otherwise what its history recorded."""
        return self.current or workflow.patched(patch_id)

    @workflow.run
    async def run(self, job: EmailJob) -> EmailResult:
        # Cancelled while an attempt is on the wire, the job waits for that attempt to end:
        # the message is sent and logged, or not sent at all, and the job says which.
        # Between attempts (waiting to retry, or paused) a cancel takes effect at once.
        self.current = workflow.patched(CURRENT)
        if self.patched(CANCEL_WAITS_FOR_SEND):
            self.cancellation = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        return await run_job(self.KIND, job, lambda: self.send(job), lambda: self.local_attempts)

    async def send(self, job: EmailJob) -> EmailResult:
        if not self.patched(LOCAL_FIRST_ATTEMPT):
            return await self.send_on_queue(job, job.retry)
        if workflow.cancellation_reason() is not None:
            # Cancelled before its first attempt (a delayed job): nothing is sent.
            raise asyncio.CancelledError("cancelled before it ran")
        self.local_attempts = 1
        attempt = workflow.start_local_activity_method(
            EmailActivities.try_send_email,
            job,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=self.cancellation,
        )
        try:
            sent = await self.unless_cancelled_on_the_wire(attempt)
        except (ActivityError, ApplicationError, TimeoutError) as err:
            cause = err.cause if isinstance(err, ActivityError) and err.cause else err
            if self.worth_queueing(job, cause):
                return await self.retry_on_queue(job)
            if isinstance(err, ActivityError):
                raise
            # A local activity's failure arrives unwrapped: wrap it as a queued activity's is,
            # so the job fails (and is dead-lettered) the same way on either path.
            raise local_activity_failure("try_send_email") from err
        if sent is not None:
            return sent
        # This worker sends through the rate-limited queue, or the kind is paused: the
        # attempt made nothing.
        self.local_attempts = 0
        return await self.send_on_queue(job, job.retry)

    async def unless_cancelled_on_the_wire(
        self, attempt: workflow.ActivityHandle[EmailResult | None]
    ) -> EmailResult | None:
        """The local attempt's result. Cancelled meanwhile, the job lets the attempt end (a
        local activity would be interrupted mid-send), then keeps what it sent or ends
        Canceled; runs from before that wait cancelled the attempt (TRY_CANCEL)."""
        if self.cancellation == ActivityCancellationType.TRY_CANCEL:
            return await attempt
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            try:
                return await attempt
            except Exception as err:
                raise asyncio.CancelledError("cancelled while sending") from err

    @staticmethod
    def worth_queueing(job: EmailJob, err: BaseException) -> bool:
        """Whether a failed first attempt leaves attempts that could heal it."""
        if isinstance(err, CancelledError) or job.retry.maximum_attempts == 1:
            return False
        return not (isinstance(err, ApplicationError) and err.non_retryable)

    async def retry_on_queue(self, job: EmailJob) -> EmailResult:
        # The backoff the second attempt would have waited for on the queue.
        await workflow.sleep(job.retry.initial_interval)
        return await self.send_on_queue(job, after_first_attempt(job.retry))

    async def send_on_queue(self, job: EmailJob, retry: RetryConfig) -> EmailResult:
        return await run_unless_paused(
            "email",
            retry,
            lambda policy: workflow.execute_activity_method(
                EmailActivities.send_email,
                job,
                task_queue=queues.sibling(workflow.info().task_queue, queues.EMAIL),
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=policy,
                cancellation_type=self.cancellation,
            ),
        )
