"""The API's marks of the outbox rows whose jobs it started: many rows in one statement.

A mark spares the relay a start, nothing more: were one lost, the relay would start the row
again under the same workflow id, which is a no-op. So a mark need not be written by the
request that started the job, nor at once. `add` only queues the row's workflow id; one
write at a time marks every id queued so far, in one UPDATE.

That matters under load. Starts complete in bursts: a busy Temporal server answers many at
once. With one UPDATE per start, each burst became dozens of statements on the database,
and the next requests' transactions queued behind them (docs/performance.md, "POST /leads
p99"). Now a burst is one statement. A start on a quiet API is marked at once, as before,
since the write begins as soon as the event loop is free.
"""

from __future__ import annotations

import asyncio
import logging

from api.metrics import ApiMetrics
from offload.db import QUERIES, Pool

log = logging.getLogger(__name__)

# The name of the marks in the after-response metrics (`offload_api_after_response_*`).
TASK = "outbox_mark"


class StartedMarks:
    """Outbox rows to mark started, written together, bounded, counted, drained."""

    def __init__(
        self, pool: Pool, metrics: ApiMetrics, *, timeout: float, max_pending: int = 10_000
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: list[str] = []
        self._writing: asyncio.Task[None] | None = None

    def add(self, workflow_id: str) -> None:
        """Mark the outbox row of `workflow_id` started, soon; never waits, never raises."""
        if len(self._pending) >= self.max_pending:
            # The database has not kept up for a while: leave this row to the relay.
            self.metrics.after_response_failures.labels(task=TASK, reason="overloaded").inc()
            return
        self._pending.append(workflow_id)
        if self._writing is None:
            self._writing = asyncio.create_task(self._write(), name="outbox marks")

    async def _write(self) -> None:
        try:
            while self._pending:
                ids, self._pending = self._pending, []
                await self._write_batch(ids)
        finally:
            self._writing = None

    async def _write_batch(self, ids: list[str]) -> None:
        try:
            await self.pool.execute(
                QUERIES.mark_outbox_started_by_workflow_ids, ids, timeout=self.timeout
            )
        except Exception as err:
            # Lost marks leave their rows to the relay. The type only: no row is named.
            reason = "timeout" if isinstance(err, TimeoutError) else "error"
            self.metrics.after_response_failures.labels(task=TASK, reason=reason).inc(len(ids))
            log.warning("%d outbox mark(s) not written (%s)", len(ids), type(err).__name__)
        else:
            self.metrics.after_response_done.labels(task=TASK).inc(len(ids))

    async def close(self) -> None:
        """Wait until every mark queued so far is written (or lost): at shutdown."""
        writing = self._writing
        if writing is not None:
            await writing
