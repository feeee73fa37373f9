"""Dead-letter activities: record a failed job, store entries, redrive and discard them."""

from __future__ import annotations

import asyncio
import json
import logging

from asyncpg import Record
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from offload import queues
from offload.db import QUERIES, Pool
from offload.models import (
    DeadLetterBatch,
    DeadLetterEntry,
    DeadLetterLookup,
    DeadLetterRef,
    DeadLetterRefs,
    DeadLetterState,
    DiscardResult,
    EntryIds,
    RedrivenJob,
    RedrivePage,
    RedriveResult,
    StoredDeadLetters,
    redrive_workflow_id,
)
from offload.settings import Settings

log = logging.getLogger(__name__)

# Names of the dead-letter workflow and its signal: activities do not import workflow code.
DEAD_LETTER_WORKFLOW = "DeadLetterWorkflow"
RECORD_SIGNAL = "record"

# The memo key a redriven workflow carries: the id of the entry it redrives.
REDRIVE_OF = "redrive_of"
# Starts in flight at once: a slow server still gives a quick redrive.
_REDRIVE_CONCURRENCY = 20


class DeadLetterActivities:
    """Activities of the dead-letter queue; the worker builds one with its settings and pool."""

    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = pool

    async def attempt_of(self, entry: DeadLetterEntry) -> int:
        """The attempts of the failed job: those before its last activity, plus that one's.

        The last activity's attempt number is read from the job's history.
        """
        if entry.started_event_id <= 0:
            return entry.attempts
        handle = activity.client().get_workflow_handle(entry.workflow_id, run_id=entry.run_id)
        async for event in handle.fetch_history_events():
            if event.event_id == entry.started_event_id:
                if event.HasField("activity_task_started_event_attributes"):
                    attempt = event.activity_task_started_event_attributes.attempt
                    return entry.attempts + attempt
                return entry.attempts
            if event.event_id > entry.started_event_id:
                break
        return entry.attempts

    @activity.defn
    async def record_dead_letter(self, entry: DeadLetterEntry) -> None:
        """Signal-with-start the dead-letter workflow of the job's prefix with `entry`.

        A retry signals again; the workflow stores entries by workflow id and run id, so
        the repeat adds nothing.
        """
        entry = entry.model_copy(update={"attempts": await self.attempt_of(entry)})
        prefix = queues.prefix_of(entry.task_queue)
        await activity.client().start_workflow(
            DEAD_LETTER_WORKFLOW,
            DeadLetterState(max_history_events=self.settings.dlq_max_history_events),
            id=queues.dead_letters_id(prefix),
            task_queue=queues.named(queues.WORKFLOWS, prefix),
            start_signal=RECORD_SIGNAL,
            start_signal_args=[DeadLetterBatch(entries=[entry])],
        )
        log.info("dead-lettered %s job %s as %s", entry.kind, entry.workflow_id, entry.id)

    @activity.defn
    async def store_dead_letters(self, batch: DeadLetterBatch) -> StoredDeadLetters:
        """Insert entries; those already stored (same workflow id and run id) are skipped."""
        entries = batch.entries
        rows = await self.pool.fetch(
            QUERIES.insert_dead_letters,
            [e.id for e in entries],
            [e.kind for e in entries],
            [e.workflow_id for e in entries],
            [e.run_id for e in entries],
            [e.workflow_type for e in entries],
            [json.dumps(e.input) for e in entries],
            [e.error_type for e in entries],
            [e.error_message for e in entries],
            [e.attempts for e in entries],
            [e.failed_at for e in entries],
        )
        return StoredDeadLetters(
            added=[DeadLetterRef(id=r["id"], kind=r["kind"], status=r["status"]) for r in rows]
        )

    @activity.defn
    async def find_dead_letter_refs(self, lookup: DeadLetterLookup) -> DeadLetterRefs:
        """The ids, kinds and statuses of the entries `lookup` names (a page, by kind)."""
        if lookup.kind is not None:
            after = lookup.after
            rows = await self.pool.fetch(
                QUERIES.find_dead_letter_refs_of_kind,
                lookup.kind,
                lookup.error_type,
                after.failed_at if after is not None else None,
                after.id if after is not None else None,
                lookup.failed_before,
                lookup.limit,
            )
        else:
            rows = await self.pool.fetch(QUERIES.find_dead_letter_refs, lookup.ids)
        return DeadLetterRefs(
            refs=[
                DeadLetterRef(
                    id=r["id"], kind=r["kind"], status=r["status"], failed_at=r.get("failed_at")
                )
                for r in rows
            ]
        )

    @activity.defn
    async def redrive_dead_letters(self, page: RedrivePage) -> RedriveResult:
        """Start each dead entry's workflow type with its input under `<id>-redrive-<n>`.

        Idempotent at every step, so a retry after a crash or a timeout finishes the page
        and starts nothing twice: entries no longer dead are skipped; each start is marked
        in `dead_letters` as soon as it is made; a start that finds its workflow id taken
        by the redrive of this same entry (its memo names the entry) is that redrive,
        already started. With `page.rate`, starts are spaced `1 / rate` seconds apart.
        """
        rows = await self.pool.fetch(QUERIES.find_dead_letters_to_redrive, page.ids)
        interval = 1 / page.rate if page.rate else 0.0
        loop = asyncio.get_running_loop()
        begun = loop.time()
        limit = asyncio.Semaphore(_REDRIVE_CONCURRENCY)
        started = 0

        async def redrive(n: int, row: Record) -> None:
            nonlocal started
            async with limit:
                if interval:
                    await asyncio.sleep(max(0.0, begun + n * interval - loop.time()))
                new_id = await self.start_redrive(row)
                await self.pool.execute(QUERIES.mark_dead_letter_redriven, row["id"], new_id)
            started += 1
            log.info("redrove %s as %s", row["id"], new_id)

        async def beat() -> None:
            # Alive while starts are slow: a dead worker is noticed by the heartbeat timeout.
            while True:
                activity.heartbeat(started)
                await asyncio.sleep(1)

        beating = asyncio.create_task(beat())
        try:
            # Every start that succeeds is marked, even when another fails: the retry then
            # has only the rest to do.
            outcomes = await asyncio.gather(
                *(redrive(n, row) for n, row in enumerate(rows)), return_exceptions=True
            )
        finally:
            beating.cancel()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        # The page's redrives, this attempt's and those of an attempt that died before it
        # returned: the workflow counts each entry of the page once.
        done = await self.pool.fetch(QUERIES.find_redriven_of, page.ids)
        return RedriveResult(
            redriven=[
                RedrivenJob(entry_id=r["id"], workflow_id=r["redrive_workflow_id"]) for r in done
            ],
            count=len(done),
        )

    async def start_redrive(self, row: Record) -> str:
        """Start the redrive of one entry, or find the one already started; return its id.

        The workflow id of a redrive is a job's id: it never runs twice (REJECT_DUPLICATE).
        An id taken by another entry's redrive (two failed runs of one job) moves on to the
        next `-redrive-<n>`.
        """
        client = activity.client()
        new_id = redrive_workflow_id(str(row["workflow_id"]))
        while True:
            try:
                await client.start_workflow(
                    str(row["workflow_type"]),
                    json.loads(str(row["input"])),
                    id=new_id,
                    task_queue=queues.named(queues.WORKFLOWS, self.settings.task_queue_prefix),
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    memo={REDRIVE_OF: row["id"]},
                )
                return new_id
            except WorkflowAlreadyStartedError:
                existing = await client.get_workflow_handle(new_id).describe()
                if (await existing.memo()).get(REDRIVE_OF) == row["id"]:
                    return new_id
                new_id = redrive_workflow_id(new_id)

    @activity.defn
    async def discard_dead_letters(self, request: EntryIds) -> DiscardResult:
        """Mark dead entries discarded: they stay listed, and are never redriven."""
        rows = await self.pool.fetch(QUERIES.mark_dead_letters_discarded, request.ids)
        return DiscardResult(discarded=sorted(r["id"] for r in rows))
