"""The transactional outbox: jobs written beside a business row, started after the commit.

The API writes an outbox row in the transaction that saves the lead and starts the job right
after the commit. Whatever it could not start (the process died, Temporal was down) the
relay starts: `OutboxRelay` runs in the worker process, takes rows with
`FOR UPDATE SKIP LOCKED` so several workers never take the same one, and starts each by its
deterministic workflow id, so a row started twice is still one job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel
from temporalio.client import Client

from offload import kinds, tracing
from offload.db import QUERIES, Pool
from offload.jobs.start import start_job
from offload.settings import Settings

log = logging.getLogger(__name__)


async def write(conn: PoolConnectionProxy, kind: str, workflow_id: str, job: BaseModel) -> int:
    """Queue `job`, of the declared kind `kind`, in the caller's transaction; return the row id.

    A row with this workflow id already queued is kept as it is (and its id returned).

    Raises:
        UnknownKindError: no kind `kind` is declared in `offload.kinds`.
    """
    kinds.named(kind)
    # The caller's trace (the request's), for the relay to join if it starts the job.
    trace = tracing.carrier()
    row_id: int | None = await conn.fetchval(
        QUERIES.insert_outbox,
        kind,
        workflow_id,
        job.model_dump_json(),
        json.dumps(trace) if trace else None,
    )
    if row_id is None:
        row_id = await conn.fetchval(QUERIES.find_outbox_id, workflow_id)
    assert row_id is not None
    return row_id


async def start(client: Client, settings: Settings, kind: str, job: BaseModel) -> None:
    """Start the job `job` of kind `kind` (idempotent: its workflow id is deterministic)."""
    declared = kinds.named(kind)
    if declared.workflow_id is None:
        raise ValueError(f"kind {kind!r} runs on its schedule; it has no workflow id to start")
    await start_job(client, settings, declared.run, job, workflow_id=declared.workflow_id(job))


async def start_row(client: Client, settings: Settings, kind: str, payload: str) -> None:
    """Start the job of one outbox row, its `payload` the job as JSON."""
    await start(client, settings, kind, kinds.named(kind).input.model_validate_json(payload))


# How often each relay prunes, and how many rows one statement deletes.
PRUNE_EVERY_SECONDS = 600.0
PRUNE_BATCH = 5000


class OutboxRelay:
    """Starts the outbox rows that the API left behind, until stopped.

    It keeps trying while Temporal is unreachable, backing off up to `max_backoff_seconds`,
    so every row starts within seconds of Temporal being back.
    """

    def __init__(
        self,
        client: Client,
        settings: Settings,
        pool: Pool,
        *,
        batch_size: int = 50,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.settings = settings
        self.pool = pool
        self.batch_size = batch_size
        self.max_backoff_seconds = max_backoff_seconds
        self.started = 0
        self.next_prune = 0.0

    async def relay_once(self) -> int:
        """Start one batch of left-behind rows, together; return how many started.

        The batch's starts run at once (a backlog after an outage drains at the server's
        pace, not one round trip at a time), and one row that cannot start holds none of the
        others back: those that started are marked in one statement, each that failed keeps
        its error and goes behind the others.

        Raises:
            Exception: the first start that failed (its row stays pending, counted).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                QUERIES.claim_outbox, self.settings.outbox_grace_seconds, self.batch_size
            )
            outcomes = await asyncio.gather(
                *(self._start(row) for row in rows), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                    raise outcome  # cancelled: not a row's failure; the rows stay pending
            started = [row["id"] for row, err in zip(rows, outcomes, strict=True) if err is None]
            failures = [
                (row, err)
                for row, err in zip(rows, outcomes, strict=True)
                if isinstance(err, Exception)
            ]
            if started:
                await conn.execute(QUERIES.mark_outbox_started_ids, started)
            for row, err in failures:
                await conn.execute(
                    QUERIES.mark_outbox_failed, row["id"], f"{type(err).__name__}: {err}"
                )
        if started:
            log.info("outbox relay started %d job(s)", len(started))
        self.started += len(started)
        if failures:
            raise failures[0][1]
        return len(started)

    async def _start(self, row: asyncpg.Record) -> None:
        """Start one claimed row's job, inside the trace of the request that wrote it."""
        trace = json.loads(row["trace_context"] or "null")
        async with asyncio.timeout(self.settings.api_start_timeout_seconds * 5):
            with tracing.span("outbox relay start", parent=trace, kind=row["kind"]):
                await start_row(self.client, self.settings, row["kind"], row["payload"])

    async def prune_once(self) -> tuple[int, int]:
        """Delete what is past `OFFLOAD_API_RETENTION_HOURS`: started outbox rows and the
        answers kept for `Idempotency-Key`. Return how many of each.

        A row not yet started is never deleted, however old. Each batch commits on its own,
        so a large backlog never holds one long transaction.
        """
        hours = self.settings.api_retention_hours
        counts = []
        for query in (QUERIES.prune_started_outbox, QUERIES.prune_idempotency_keys):
            total = 0
            while True:
                status = await self.pool.execute(query, hours, PRUNE_BATCH)
                deleted = int(status.rsplit(" ", 1)[-1])
                total += deleted
                if deleted < PRUNE_BATCH:
                    break
            counts.append(total)
        if any(counts):
            log.info("outbox relay pruned %d outbox row(s), %d idempotency key(s)", *counts)
        return counts[0], counts[1]

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; prune every `PRUNE_EVERY_SECONDS`."""
        delay = self.settings.outbox_poll_seconds
        while not stop.is_set():
            try:
                if time.monotonic() >= self.next_prune:
                    self.next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    await self.prune_once()
                full = await self.relay_once() == self.batch_size
                delay = 0 if full else self.settings.outbox_poll_seconds
            except (OSError, asyncpg.PostgresError) as err:
                log.warning("outbox relay: database unavailable (%s)", type(err).__name__)
                delay = min(max(delay * 2, 0.5), self.max_backoff_seconds)
            except Exception as err:
                # Temporal unreachable, or one bad row: retry soon, but not in a hot loop.
                log.warning("outbox relay: start failed (%s), retrying", type(err).__name__)
                delay = min(max(delay * 2, 0.5), self.max_backoff_seconds)
            if delay:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
