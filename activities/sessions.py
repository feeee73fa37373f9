"""Session activities: delete expired web sessions in short transactions."""

from __future__ import annotations

from temporalio import activity

from offload.db import QUERIES, Pool
from offload.models import SessionCleanup, SessionCleanupResult


class SessionActivities:
    """Activities on web sessions; the worker builds one with its pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @activity.defn
    async def delete_expired_sessions(self, cleanup: SessionCleanup) -> SessionCleanupResult:
        """Delete sessions expired before the cutoff, one batch per statement.

        Each batch commits on its own, so a million expired rows never hold one long
        transaction; the heartbeat carries the counts so a retry reports the whole run.
        """
        details = activity.info().heartbeat_details
        deleted, batches = (int(v) for v in details[0]) if details else (0, 0)
        while True:
            status = await self.pool.execute(
                QUERIES.delete_expired_sessions, cleanup.cutoff, cleanup.batch_size
            )
            count = int(status.rsplit(" ", 1)[-1])
            if count == 0:
                break
            deleted += count
            batches += 1
            activity.heartbeat((deleted, batches))
            if count < cleanup.batch_size:
                break
        return SessionCleanupResult(cutoff=cleanup.cutoff, deleted=deleted, batches=batches)
