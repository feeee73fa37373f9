"""The dead-letter queue: `run_job`, the failure path of every job, and `DeadLetterWorkflow`.

A job workflow wraps its body in `run_job`. When an activity or child workflow of the job
fails for good (out of retries, timed out for good, or non-retryable), `run_job` records a
`DeadLetterEntry` with the long-lived `DeadLetterWorkflow` of the job's task-queue prefix
(workflow id `dead-letters`, signal-with-start from an activity, since a workflow cannot
signal-with-start) and re-raises, so the job still shows as Failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.dead_letters import RECORD_SIGNAL, DeadLetterActivities
    from offload import queues
    from offload.models import (
        DeadLetterBatch,
        DeadLetterEntry,
        DeadLetterLookup,
        DeadLetterRef,
        DeadLetterState,
        DeadLetterSummary,
        DiscardRequest,
        DiscardResult,
        EntryIds,
        RedrivePage,
        RedriveRequest,
        RedriveResult,
    )

ResultT = TypeVar("ResultT")

# Dead-letter bookkeeping must not be lost: retry without a limit, never wait long.
_PERSISTENT = RetryPolicy(maximum_interval=timedelta(seconds=30))
_DB_TIMEOUT = timedelta(seconds=30)
# Entries stored per activity: one insert for a burst of failures, not one per signal.
_STORE_BATCH = 500
_NEWEST = 20
# An update names at most this many ids; a whole kind goes by `kind`.
MAX_IDS_PER_UPDATE = 1000
# A redrive by kind goes in pages of at most this many entries (a page's ids and result are
# tens of kilobytes, far below the 2 MB payload limit), and of about five seconds at a
# rate, so the counts of `summary` move visibly.
_REDRIVE_PAGE = 500
_REDRIVE_PAGE_SECONDS = 5
_REDRIVE_HEARTBEAT = timedelta(seconds=10)
_REDRIVE_TIMEOUT = timedelta(minutes=5)
# Patches: histories recorded before each change keep replaying (tests/replay).
STORE_WHILE_DRAINING = "dlq-store-while-draining"
REDRIVE_IN_PAGES = "dlq-redrive-in-pages"


def _page_size(rate: float | None) -> int:
    if rate is None:
        return _REDRIVE_PAGE
    return max(1, min(_REDRIVE_PAGE, int(rate * _REDRIVE_PAGE_SECONDS)))


def _final_cause(err: BaseException) -> BaseException:
    """The error under the activity/child wrappers: what actually went wrong."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        err = err.cause
    return err


def _describe(err: BaseException) -> tuple[str, str]:
    """The error type and message a person reads in `offload dlq show`."""
    if isinstance(err, ApplicationError):
        return err.type or "ApplicationError", err.message
    if isinstance(err, TimeoutError):
        kind = err.type.name if err.type is not None else "UNKNOWN"
        return "Timeout", f"timed out ({kind})"
    return type(err).__name__, str(err)


async def run_job(
    kind: str,
    job: BaseModel,
    body: Callable[[], Awaitable[ResultT]],
    attempts_before: Callable[[], int] = lambda: 0,
) -> ResultT:
    """Run a job's `body`; if it fails for good, dead-letter the job, then fail it.

    Every job workflow's run method is one call to this:

        return await run_job(self.KIND, job, lambda: workflow.execute_activity_method(...))

    "For good" is an `ActivityError` or `ChildWorkflowError` escaping `body`: Temporal
    raises them only once retries are exhausted, the error was non-retryable, or the
    activity timed out for good. The entry carries `kind`, the workflow id, run id and type,
    `job` as JSON (a redrive starts the workflow type with it), the error type and message,
    the attempt number and the time. `attempts_before` counts attempts the failed activity's
    own attempt number does not (a local first attempt before a queued activity), so the
    entry says how often the job really tried. Cancellation is not a failure: it is re-raised
    as is, and a job whose cancellation was requested ends Canceled whatever its last step did.

    Raises:
        The error of `body`, unchanged, after the entry is recorded.
    """
    try:
        return await body()
    except (ActivityError, ChildWorkflowError) as err:
        cause = _final_cause(err)
        if isinstance(cause, CancelledError):
            raise
        if workflow.cancellation_reason() is not None:
            # An attempt that ended badly after the operator cancelled the job (it was
            # left to finish): the operator asked for Canceled, not for a dead letter.
            raise asyncio.CancelledError(f"cancelled: {workflow.cancellation_reason()}") from err
        error_type, message = describe_failure(err)
        await dead_letter(
            kind,
            job,
            error_type,
            message,
            attempts=attempts_before(),
            started_event_id=err.started_event_id if isinstance(err, ActivityError) else 0,
        )
        raise


def local_activity_failure(activity_type: str) -> ActivityError:
    """The error a queued activity raises when it fails for good, for a local activity.

    A local activity that fails for good raises its own error unwrapped (an
    `ApplicationError`, a `TimeoutError`); raise this `from` it, and `run_job` dead-letters
    the job as it does when a queued activity fails.
    """
    return ActivityError(
        "local activity failed",
        scheduled_event_id=0,
        started_event_id=0,
        identity="",
        activity_type=activity_type,
        activity_id="",
        retry_state=None,
    )


def describe_failure(err: ActivityError | ChildWorkflowError) -> tuple[str, str]:
    """The error type and message of what went wrong under an activity or child failure."""
    return _describe(_final_cause(err))


def is_dead_letter(err: BaseException) -> bool:
    """Whether `run_job` dead-lettered a job that failed with `err` (what it catches)."""
    return isinstance(err, ActivityError | ChildWorkflowError) and not isinstance(
        _final_cause(err), CancelledError
    )


async def dead_letter(
    kind: str,
    job: BaseModel,
    error_type: str,
    message: str,
    *,
    suffix: str = "",
    attempts: int = 0,
    started_event_id: int = 0,
) -> None:
    """Record `job` of this workflow in the dead-letter queue; a redrive starts it again.

    `run_job` calls it for a whole job; a job that fails for part of its work and goes on
    with the rest (one recipient of a digest batch) calls it for that part, with `job` the
    input that redoes only that part and `suffix` telling the entry apart
    (`<workflow id><suffix>`, so each part is its own entry).
    """
    info = workflow.info()
    entry = DeadLetterEntry(
        kind=kind,
        workflow_id=f"{info.workflow_id}{suffix}",
        run_id=info.run_id,
        workflow_type=info.workflow_type,
        task_queue=info.task_queue,
        input=job.model_dump(mode="json"),
        error_type=error_type,
        error_message=message,
        attempts=attempts,
        started_event_id=started_event_id,
        failed_at=workflow.now(),
    )
    await workflow.execute_activity_method(
        DeadLetterActivities.record_dead_letter,
        entry,
        task_queue=queues.sibling(info.task_queue, queues.DEFAULT),
        start_to_close_timeout=_DB_TIMEOUT,
        retry_policy=_PERSISTENT,
    )


def _reject(ids: list[str], refs: list[DeadLetterRef], action: str) -> None:
    """Refuse an update naming unknown entries or entries that are no longer dead."""
    found = {ref.id: ref for ref in refs}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise ApplicationError(
            f"unknown dead-letter id(s): {', '.join(unknown)}", type="UnknownDeadLetter"
        )
    wrong = [f"{i} is {found[i].status}" for i in ids if found[i].status != "dead"]
    if wrong:
        raise ApplicationError(
            f"cannot {action} entries that are not dead: {'; '.join(wrong)}",
            type="DeadLetterNotDead",
        )


@workflow.defn
class DeadLetterWorkflow:
    """The long-lived dead-letter queue of one task-queue prefix (id `dead-letters`).

    Entries arrive by the `record` signal and are stored in Postgres in batches,
    idempotently (by workflow id and run id). The `summary` query answers from a small
    in-memory summary; `redrive` and `discard` updates change entries. Entries live in
    Postgres, not in the workflow: that keeps its state bounded however many there are,
    and is why a redrive or discard looks ids up there (an update naming unknown ids or
    entries in the wrong state fails with an error that names them, and changes nothing;
    the validator rejects malformed requests before they reach the history).
    The workflow continues as new when the server suggests it or its history passes
    `max_history_events`, once every handler has finished, carrying its summary and any
    entries not yet stored.
    """

    @workflow.init
    def __init__(self, state: DeadLetterState) -> None:
        self.state_summary = state.summary.model_copy(deep=True)
        self.pending: list[DeadLetterEntry] = list(state.pending)
        self.max_history_events = state.max_history_events
        # One redrive or discard at a time: each checks states, then changes them.
        self.changing = asyncio.Lock()

    @workflow.run
    async def run(self, state: DeadLetterState) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.pending) or self.history_is_long())
            if self.pending:
                await self.store_pending()
                continue
            if workflow.patched(STORE_WHILE_DRAINING):
                # An update may be waiting for pending entries to be stored (`lookup`):
                # entries that arrive now are stored first, then the drain starts again,
                # so continuing as new never waits on an update that waits on this loop.
                await workflow.wait_condition(
                    lambda: bool(self.pending) or workflow.all_handlers_finished()
                )
                if self.pending:
                    continue
            else:
                await workflow.wait_condition(workflow.all_handlers_finished)
            self.state_summary.continued_as_new += 1
            workflow.continue_as_new(
                DeadLetterState(
                    summary=self.state_summary,
                    pending=self.pending,
                    max_history_events=self.max_history_events,
                )
            )

    def history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.max_history_events
        )

    def activity_queue(self) -> str:
        return queues.sibling(workflow.info().task_queue, queues.DEFAULT)

    async def store_pending(self) -> None:
        batch = self.pending[:_STORE_BATCH]
        stored = await workflow.execute_activity_method(
            DeadLetterActivities.store_dead_letters,
            DeadLetterBatch(entries=batch),
            task_queue=self.activity_queue(),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_PERSISTENT,
        )
        del self.pending[: len(batch)]
        for ref in stored.added:
            self.state_summary.count(ref.kind, ref.status, 1)
        added = [ref.id for ref in reversed(stored.added)]
        self.state_summary.newest_ids = (added + self.state_summary.newest_ids)[:_NEWEST]

    @workflow.signal(name=RECORD_SIGNAL)
    def record(self, batch: DeadLetterBatch) -> None:
        """Queue entries for storing; the same failed run signalled twice is stored once."""
        waiting = {p.id for p in self.pending}
        for entry in batch.entries:
            if entry.id not in waiting:
                waiting.add(entry.id)
                self.pending.append(entry)

    @workflow.query
    def summary(self) -> DeadLetterSummary:
        """Counts by kind and status, and the newest entry ids."""
        return self.state_summary

    async def lookup(self, lookup: DeadLetterLookup) -> list[DeadLetterRef]:
        # Entries signalled a moment ago must be stored before they can be found.
        await workflow.wait_condition(lambda: not self.pending)
        found = await workflow.execute_activity_method(
            DeadLetterActivities.find_dead_letter_refs,
            lookup,
            task_queue=self.activity_queue(),
            start_to_close_timeout=_DB_TIMEOUT,
            retry_policy=_PERSISTENT,
        )
        return found.refs

    @workflow.update
    async def redrive(self, request: RedriveRequest) -> RedriveResult:
        """Start each dead entry's workflow again with its input, under `<id>-redrive-<n>`.

        By ids, every id must name a dead entry (else the update fails, naming them, and
        starts nothing). By kind (and error type), the dead entries of the kind that failed
        before the update began are redriven, a page at a time, each page recorded before
        the next (the `summary` query and `dlq list` show the progress): none left means
        nothing is started. `request.rate` spreads the starts.
        """
        async with self.changing:
            paged = workflow.patched(REDRIVE_IN_PAGES)
            if request.kind is None:
                refs = await self.lookup(DeadLetterLookup(ids=request.ids))
                _reject(request.ids, refs, "redrive")
                return await self.redrive_page(refs, request.rate)
            result = RedriveResult()
            lookup = DeadLetterLookup(
                kind=request.kind,
                error_type=request.error_type,
                failed_before=workflow.now(),
                limit=_page_size(request.rate) if paged else None,
            )
            while refs := await self.lookup(lookup):
                result.add(await self.redrive_page(refs, request.rate))
                if lookup.limit is None or len(refs) < lookup.limit:
                    break
                lookup = lookup.model_copy(update={"after": refs[-1]})
            return result

    async def redrive_page(self, refs: list[DeadLetterRef], rate: float | None) -> RedriveResult:
        """Redrive one page of entries, counting them in the summary."""
        if not refs:
            return RedriveResult()
        kinds = {ref.id: ref.kind for ref in refs}
        result = await workflow.execute_activity_method(
            DeadLetterActivities.redrive_dead_letters,
            RedrivePage(ids=sorted(kinds), rate=rate),
            task_queue=self.activity_queue(),
            # Each start is recorded as it is made: a retry finishes the page, and a worker
            # that dies mid-page is noticed by the heartbeat timeout.
            start_to_close_timeout=_REDRIVE_TIMEOUT + timedelta(seconds=len(kinds) / (rate or 10)),
            heartbeat_timeout=_REDRIVE_HEARTBEAT,
            retry_policy=_PERSISTENT,
        )
        for job in result.redriven:
            self.state_summary.count(kinds[job.entry_id], "dead", -1)
            self.state_summary.count(kinds[job.entry_id], "redriven", 1)
        return result

    @redrive.validator
    def validate_redrive(self, request: RedriveRequest) -> None:
        if bool(request.ids) == (request.kind is not None):
            raise ValueError("redrive takes entry ids or a kind, not both and not neither")
        if request.error_type is not None and request.kind is None:
            raise ValueError("redrive takes an error type only with a kind")
        if len(request.ids) > MAX_IDS_PER_UPDATE:
            raise ValueError(f"at most {MAX_IDS_PER_UPDATE} ids per redrive; use a kind")

    @workflow.update
    async def discard(self, request: DiscardRequest) -> DiscardResult:
        """Mark dead entries discarded: they stay listed and are never redriven."""
        async with self.changing:
            refs = await self.lookup(DeadLetterLookup(ids=request.ids))
            _reject(request.ids, refs, "discard")
            result = await workflow.execute_activity_method(
                DeadLetterActivities.discard_dead_letters,
                EntryIds(ids=sorted({ref.id for ref in refs})),
                task_queue=self.activity_queue(),
                start_to_close_timeout=_DB_TIMEOUT,
                retry_policy=_PERSISTENT,
            )
            kinds = {ref.id: ref.kind for ref in refs}
            for entry_id in result.discarded:
                self.state_summary.count(kinds[entry_id], "dead", -1)
                self.state_summary.count(kinds[entry_id], "discarded", 1)
            return result

    @discard.validator
    def validate_discard(self, request: DiscardRequest) -> None:
        if not request.ids:
            raise ValueError("discard takes at least one entry id")
        if len(request.ids) > MAX_IDS_PER_UPDATE:
            raise ValueError(f"at most {MAX_IDS_PER_UPDATE} ids per discard")
