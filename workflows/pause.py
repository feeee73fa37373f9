"""`run_unless_paused`: a job step that waits out `offload pause` of its kind.

The step's activity checks the pause gate (`activities.pause`) before each attempt. Paused,
it fails with `KindPaused` and the attempt it was on; this waits, without a running
activity and without spending retries, until `offload resume` signals the job (or, should
that signal be missed, until a periodic recheck), then schedules the step again with the
attempts it had left. Temporal's own activity pause acts on one workflow's activities at a
time and not on jobs started after it; a gate checked by every attempt covers both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.pause import KIND_PAUSED, RESUME_SIGNAL
    from offload.models import KindPausedDetails, RetryConfig
    from workflows.policies import retry_policy

ResultT = TypeVar("ResultT")

# A paused job looks again this often even without the resume signal (a job that paused
# just as `offload resume` listed the running jobs may miss it). Each look is a few events.
RECHECK_INTERVAL = timedelta(minutes=5)


def _paused(err: ActivityError) -> KindPausedDetails | None:
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type != KIND_PAUSED:
        return None
    detail = cause.details[0] if cause.details else {}
    return KindPausedDetails.model_validate(detail)


class _ResumeSignal:
    """The handler of the resume signal: it notes that one arrived."""

    def __init__(self) -> None:
        self.arrived = False

    def __call__(self, kind: str) -> None:
        self.arrived = True


async def run_unless_paused(
    kind: str, retry: RetryConfig, step: Callable[[RetryPolicy], Awaitable[ResultT]]
) -> ResultT:
    """Run `step(retry policy)`; while `kind` is paused, wait, then run it again.

    The attempts a job had made before its kind was paused count against
    `retry.maximum_attempts`: a resumed job has the attempts it had left, no more, no fewer.
    A job cancelled while it waits ends Canceled.
    """
    used = 0
    resume = _ResumeSignal()
    while True:
        # A resume that arrives while the step runs counts: the next wait ends at once.
        resume.arrived = False
        config = retry.model_copy(
            update={"maximum_attempts": max(retry.maximum_attempts - used, 1)}
        )
        try:
            return await step(retry_policy(config))
        except ActivityError as err:
            paused = _paused(err)
            if paused is None:
                raise
        # The attempt that stood down did nothing; the ones before it were real.
        used += paused.attempt - 1
        if workflow.get_signal_handler(RESUME_SIGNAL) is None:
            workflow.set_signal_handler(RESUME_SIGNAL, resume)
        try:
            await workflow.wait_condition(lambda: resume.arrived, timeout=RECHECK_INTERVAL)
        except TimeoutError:
            pass
