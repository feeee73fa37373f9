"""The dead-letter queue from outside: list and show entries, redrive and discard them.

Listing and showing read the `dead_letters` table; redrive and discard are updates of
the `dead-letters` workflow, which checks and records every change.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from offload import queues
from offload.db import QUERIES, Pool
from offload.jobs.errors import JobInputError, NotFoundError, RefusedError
from offload.models import DiscardRequest, DiscardResult, RedriveRequest, RedriveResult
from offload.settings import Settings
from workflows.dead_letters import DeadLetterWorkflow

STATUSES = ("dead", "redriven", "discarded")
_ENTRY_ID = re.compile(r"^dl-[0-9a-f]{12}$")


def check_ids(ids: list[str]) -> list[str]:
    """The ids as given, once each.

    Raises:
        JobInputError: an id is malformed (the message names it).
    """
    bad = [i for i in ids if not _ENTRY_ID.match(i)]
    if bad:
        raise JobInputError(
            f"ID {', '.join(repr(b) for b in bad)} is not a dead-letter id "
            "(dl- and 12 hex digits, as `offload dlq list` prints)"
        )
    return list(dict.fromkeys(ids))


async def list_dead_letters(
    pool: Pool, kind: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Entries, newest failure first, optionally of one kind and status."""
    rows = await pool.fetch(QUERIES.list_dead_letters, kind, status)
    return [dict(r) for r in rows]


async def find_dead_letter(pool: Pool, entry_id: str) -> dict[str, Any] | None:
    """One entry with its input decoded, or None when no entry has this id."""
    row = await pool.fetchrow(QUERIES.find_dead_letter, entry_id)
    if row is None:
        return None
    entry = dict(row)
    entry["input"] = json.loads(entry["input"])
    return entry


def dead_letter_handle(
    client: Client, settings: Settings
) -> WorkflowHandle[DeadLetterWorkflow, None]:
    """The handle of the dead-letter workflow of this task-queue prefix."""
    return client.get_workflow_handle_for(
        DeadLetterWorkflow.run, queues.dead_letters_id(settings.task_queue_prefix)
    )


async def redrivable(pool: Pool, request: RedriveRequest) -> list[dict[str, Any]]:
    """The dead entries `request` would redrive now, oldest failure first."""
    if request.kind is not None:
        rows = await pool.fetch(
            QUERIES.find_dead_letter_refs_of_kind,
            request.kind,
            request.error_type,
            None,
            None,
            None,
            None,
        )
    else:
        rows = await pool.fetch(QUERIES.find_dead_letters_to_redrive, request.ids)
    return [dict(r) for r in rows]


async def redrive(
    client: Client,
    settings: Settings,
    request: RedriveRequest,
    tick: Callable[[], Awaitable[None]] | None = None,
    every_seconds: float = 1.0,
) -> RedriveResult:
    """Redrive entries; `tick`, if given, is awaited every second until the redrive is done
    (the CLI shows its progress from it).

    Raises: see `refusals`.
    """
    with refusals():
        handle = dead_letter_handle(client, settings)
        update = await handle.start_update(
            DeadLetterWorkflow.redrive, request, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        waiting = asyncio.ensure_future(update.result())
        while not waiting.done():
            await asyncio.wait([waiting], timeout=every_seconds)
            if tick is not None and not waiting.done():
                await tick()
        return waiting.result()


async def discard(client: Client, settings: Settings, request: DiscardRequest) -> DiscardResult:
    """Mark dead entries discarded, never to be redriven (errors: see `refusals`)."""
    with refusals():
        handle = dead_letter_handle(client, settings)
        return await handle.execute_update(DeadLetterWorkflow.discard, request)


@contextmanager
def refusals() -> Iterator[None]:
    """Answer a refused update of the dead-letter workflow with the client layer's errors.

    Raises:
        RefusedError: the workflow refused the request (the message is its reason).
        NotFoundError: no job has been dead-lettered yet, so there is no dead-letter workflow.
    """
    try:
        yield
    except (WorkflowUpdateFailedError, RPCError) as err:
        raise _refused(err) from None


def _refused(err: WorkflowUpdateFailedError | RPCError) -> JobInputError:
    if isinstance(err, RPCError):
        if err.status == RPCStatusCode.NOT_FOUND:
            return NotFoundError("the dead-letter queue is empty: no job has been dead-lettered")
        return RefusedError(f"the dead-letter workflow did not answer: {err.message}")
    cause = err.cause
    message = getattr(cause, "message", None) or str(cause)
    return RefusedError(message)
