"""Dead-letter activities: record a failed job, store entries, redrive and discard them."""

from __future__ import annotations

import asyncio
import json
import logging
import re

from temporalio import activity

from offload import queues
from offload.db import QUERIES, Pool
from offload.jobs.start import ID_CONFLICT_POLICY, ID_REUSE_POLICY
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
    RedriveResult,
    StoredDeadLetters,
)
from offload.settings import Settings

log = logging.getLogger(__name__)

# Names of the dead-letter workflow and its signal: activities do not import workflow code.
DEAD_LETTER_WORKFLOW = "DeadLetterWorkflow"
RECORD_SIGNAL = "record"

_REDRIVE_SUFFIX = re.compile(r"^(?P<base>.*)-redrive-(?P<n>\d+)$")

# Redrives start workflows a few at a time: enough to be quick, few enough to be gentle.
_REDRIVE_CONCURRENCY = 20


def redrive_workflow_id(workflow_id: str) -> str:
    """`<id>-redrive-1` for a first redrive; a redriven job that failed again gets `-redrive-2`."""
    match = _REDRIVE_SUFFIX.match(workflow_id)
    if match:
        return f"{match['base']}-redrive-{int(match['n']) + 1}"
    return f"{workflow_id}-redrive-1"


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
        """The ids, kinds and statuses of the entries `lookup` names."""
        if lookup.kind is not None:
            rows = await self.pool.fetch(QUERIES.find_dead_letter_refs_of_kind, lookup.kind)
        else:
            rows = await self.pool.fetch(QUERIES.find_dead_letter_refs, lookup.ids)
        return DeadLetterRefs(
            refs=[DeadLetterRef(id=r["id"], kind=r["kind"], status=r["status"]) for r in rows]
        )

    @activity.defn
    async def redrive_dead_letters(self, request: EntryIds) -> RedriveResult:
        """Start each entry's workflow type with its input under `<id>-redrive-<n>`, once.

        The start is idempotent (USE_EXISTING, reuse only after failure), so a retry of this
        activity after a crash finds the workflows it started and starts nothing twice.
        """
        rows = await self.pool.fetch(QUERIES.find_dead_letters_by_id, request.ids)
        client = activity.client()
        limit = asyncio.Semaphore(_REDRIVE_CONCURRENCY)

        async def redrive(row: dict[str, object]) -> RedrivenJob:
            new_id = redrive_workflow_id(str(row["workflow_id"]))
            async with limit:
                await client.start_workflow(
                    str(row["workflow_type"]),
                    json.loads(str(row["input"])),
                    id=new_id,
                    task_queue=queues.named(queues.WORKFLOWS, self.settings.task_queue_prefix),
                    id_conflict_policy=ID_CONFLICT_POLICY,
                    id_reuse_policy=ID_REUSE_POLICY,
                )
                await self.pool.execute(QUERIES.mark_dead_letter_redriven, row["id"], new_id)
            return RedrivenJob(entry_id=str(row["id"]), workflow_id=new_id)

        redriven = await asyncio.gather(*(redrive(dict(r)) for r in rows))
        for job in redriven:
            log.info("redrove %s as %s", job.entry_id, job.workflow_id)
        return RedriveResult(redriven=list(redriven))

    @activity.defn
    async def discard_dead_letters(self, request: EntryIds) -> DiscardResult:
        """Mark dead entries discarded: they stay listed, and are never redriven."""
        rows = await self.pool.fetch(QUERIES.mark_dead_letters_discarded, request.ids)
        return DiscardResult(discarded=sorted(r["id"] for r in rows))
