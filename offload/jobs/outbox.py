"""The transactional outbox: jobs written beside a business row, started after the commit.

The API writes an outbox row in the transaction that saves the lead and starts the job right
after the commit. Whatever it could not start (the process died, Temporal was down) the
relay starts: `OutboxRelay` runs in the worker process, takes rows with
`FOR UPDATE SKIP LOCKED` so several workers never take the same one, and starts each by its
deterministic workflow id, so a row started twice is still one job. A writer that leaves the
start to the relay (`offload api` without its worker) wakes it at the commit
(`write(..., wake_relay=True)`, a `NOTIFY` on `CHANNEL` in the statement that writes the
row, so waking costs no round trip of its own); the relay then starts the row at once,
eagerly, since its process runs the workflow worker.
"""

from __future__ import annotations

import asyncio
import contextlib
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


# The channel on which writers wake the relays.
CHANNEL = "offload_outbox"


async def write(
    conn: PoolConnectionProxy,
    kind: str,
    workflow_id: str,
    job: BaseModel,
    *,
    wake_relay: bool = False,
) -> int:
    """Queue `job`, of the declared kind `kind`, in the caller's transaction; return the row id.

    A row with this workflow id already queued is kept as it is (and its id returned). With
    `wake_relay` the caller leaves the start to the relay: the relays listening are woken
    when the transaction commits, and start the row at once, not after its grace.

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
        CHANNEL if wake_relay else None,
    )
    if row_id is None:
        # Queued before: a row another transaction committed meanwhile is not in the
        # insert's snapshot, so it is looked up in a statement of its own.
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


# Woken passes come at most this often: under a stream of leads a pass takes every row
# written since the last one, rather than one pass (and its transaction) per lead.
WAKE_INTERVAL_SECONDS = 0.05
# How often each relay prunes, and how many rows one statement deletes.
PRUNE_EVERY_SECONDS = 600.0
PRUNE_BATCH = 5000


class OutboxRelay:
    """Starts the outbox rows that the API left behind, until stopped.

    It looks every `OFFLOAD_OUTBOX_POLL_SECONDS` for rows older than
    `OFFLOAD_OUTBOX_GRACE_SECONDS` (the API starts its own rows within that grace), and at
    once, grace or not, when a writer wakes it (`write(..., wake_relay=True)`) on the
    connection it listens on; that connection, when lost, is opened again at once, and the
    pass that follows finds what was written meanwhile. It keeps trying while Temporal is
    unreachable, backing off up to `max_backoff_seconds`, so every row starts within
    seconds of Temporal being back.
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
        # Set by a notification on CHANNEL, or by the loss of the connection that listens.
        self._woken = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._last_pass = 0.0

    async def relay_once(self, *, grace_seconds: float | None = None) -> int:
        """Start one batch of left-behind rows, together; return how many started.

        Rows younger than `grace_seconds` (`OFFLOAD_OUTBOX_GRACE_SECONDS` unless given) are
        left to their writer.

        The batch's starts run at once (a backlog after an outage drains at the server's
        pace, not one round trip at a time), and one row that cannot start holds none of the
        others back: those that started are marked in one statement, each that failed keeps
        its error and goes behind the others.

        Raises:
            Exception: the first start that failed (its row stays pending, counted).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            grace = self.settings.outbox_grace_seconds if grace_seconds is None else grace_seconds
            rows = await conn.fetch(QUERIES.claim_outbox, grace, self.batch_size)
            outcomes = await asyncio.gather(
                *(self._start(row) for row in rows), return_exceptions=True
            )
            started: list[str] = []
            failures: list[tuple[asyncpg.Record, Exception]] = []
            for row, outcome in zip(rows, outcomes, strict=True):
                if outcome is None:
                    started.append(row["workflow_id"])
                elif isinstance(outcome, Exception):
                    failures.append((row, outcome))
                else:
                    raise outcome  # cancelled: not a row's failure; the rows stay pending
            if started:
                # The statement the API's marks use (api.started_marks).
                await conn.execute(QUERIES.mark_outbox_started_by_workflow_ids, started)
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

    async def listen(self) -> None:
        """Listen on CHANNEL, on a connection of its own (a pooled one would be reset), unless
        it already does. Raises what connecting raises."""
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        listener = await asyncpg.connect(self.settings.dsn)
        # Lost, it wakes the loop, which listens again and looks for what it missed.
        listener.add_termination_listener(lambda _: self._woken.set())
        await listener.add_listener(CHANNEL, lambda *_: self._woken.set())
        self._listener = listener

    async def close(self) -> None:
        """Close the listening connection."""
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await listener.close(timeout=5)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; prune every `PRUNE_EVERY_SECONDS`."""
        try:
            await self._run(stop)
        finally:
            await self.close()

    async def _run(self, stop: asyncio.Event) -> None:
        delay = self.settings.outbox_poll_seconds
        while not stop.is_set():
            failed = True
            try:
                # Woken, the rows are their writer's no more: no grace. Cleared before the
                # connection is checked, so a loss from here on wakes the next pass.
                woken = self._woken.is_set()
                if woken:
                    soonest = self._last_pass + WAKE_INTERVAL_SECONDS - time.monotonic()
                    if soonest > 0:
                        await self._sleep(stop, soonest, wakeable=False)
                self._woken.clear()
                await self.listen()
                if time.monotonic() >= self.next_prune:
                    self.next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    await self.prune_once()
                self._last_pass = time.monotonic()
                started = await self.relay_once(grace_seconds=0 if woken else None)
                delay = 0 if started == self.batch_size else self.settings.outbox_poll_seconds
                failed = False
            except (OSError, asyncpg.PostgresError) as err:
                log.warning("outbox relay: database unavailable (%s)", type(err).__name__)
                delay = min(max(delay * 2, 0.5), self.max_backoff_seconds)
            except Exception as err:
                # Temporal unreachable, or one bad row: retry soon, but not in a hot loop.
                log.warning("outbox relay: start failed (%s), retrying", type(err).__name__)
                delay = min(max(delay * 2, 0.5), self.max_backoff_seconds)
            if delay:
                # A backoff is not cut short: while Temporal is down every lead would wake it.
                await self._sleep(stop, delay, wakeable=not failed)

    async def _sleep(self, stop: asyncio.Event, seconds: float, *, wakeable: bool) -> None:
        """Until `stop`, a wake-up (if `wakeable`) or `seconds`, whichever comes first."""
        waits = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waits.append(asyncio.ensure_future(self._woken.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
