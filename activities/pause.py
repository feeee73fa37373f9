"""The pause gate: an activity of a paused kind stands down before it does anything.

`offload pause KIND` writes the kind to `paused_kinds`. A pausable activity calls
`PauseGate.check(kind)` first: while its kind is paused it fails at once, before any side
effect, with a non-retryable `KindPaused` error carrying its attempt number, and the job
workflow (`workflows.pause.run_unless_paused`) waits for the resume and runs the step again
with the attempts it had left. Nothing is sent, no retry is spent, nothing is dead-lettered.
"""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from offload.db import QUERIES, Pool
from offload.models import KindPausedDetails

# The error type a paused kind's activity fails with before it does anything, and the signal
# `offload resume` sends to the kind's running jobs so they try again at once.
KIND_PAUSED = "KindPaused"
RESUME_SIGNAL = "offload-kind-resumed"


class PauseGate:
    """Answers "is this kind paused?" for the activities of one worker.

    "Not paused" is remembered for `ttl_seconds`, so a busy worker asks the database about
    once a second rather than once per job; a pause therefore holds back every attempt that
    starts later than that. "Paused" is always asked again, so a resumed kind runs at once.
    """

    def __init__(self, pool: Pool, *, ttl_seconds: float = 1.0) -> None:
        self.pool = pool
        self.ttl_seconds = ttl_seconds
        self._running_until: dict[str, float] = {}

    async def is_paused(self, kind: str) -> bool:
        if time.monotonic() < self._running_until.get(kind, 0.0):
            return False
        paused = bool(await self.pool.fetchval(QUERIES.kind_is_paused, kind))
        if paused:
            self._running_until.pop(kind, None)
        else:
            self._running_until[kind] = time.monotonic() + self.ttl_seconds
        return paused

    async def check(self, kind: str) -> None:
        """Return if `kind` may run; raise `KindPaused` (non-retryable) while it is paused."""
        if await self.is_paused(kind):
            attempt = activity.info().attempt
            raise ApplicationError(
                f"{kind} jobs are paused (offload resume {kind})",
                KindPausedDetails(kind=kind, attempt=attempt),
                type=KIND_PAUSED,
                non_retryable=True,
            )
