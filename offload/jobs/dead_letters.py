"""The dead-letter queue from outside: list and show entries, redrive and discard them.

Listing and showing read the `dead_letters` table; redrive and discard are updates of
the `dead-letters` workflow, which checks and records every change.
"""

from __future__ import annotations

import json
import re
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
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


async def redrive(client: Client, settings: Settings, request: RedriveRequest) -> RedriveResult:
    """Redrive entries.

    Raises:
        RefusedError: the workflow refused the request (the message is its reason).
        NotFoundError: no job has been dead-lettered yet, so there is no dead-letter workflow.
    """
    try:
        return await dead_letter_handle(client, settings).execute_update(
            DeadLetterWorkflow.redrive, request
        )
    except (WorkflowUpdateFailedError, RPCError) as err:
        raise _refused(err) from None


async def discard(client: Client, settings: Settings, request: DiscardRequest) -> DiscardResult:
    """Discard entries.

    Raises:
        RefusedError: the workflow refused the request (the message is its reason).
        NotFoundError: no job has been dead-lettered yet, so there is no dead-letter workflow.
    """
    try:
        return await dead_letter_handle(client, settings).execute_update(
            DeadLetterWorkflow.discard, request
        )
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
