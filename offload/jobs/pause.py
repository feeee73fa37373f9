"""Pausing a kind of job: `offload pause KIND`, `offload resume KIND`, `offload pause --list`.

The pause lives in `paused_kinds`, which every pausable activity checks before each
attempt (`activities.pause.PauseGate`); see there and `workflows.pause` for what a paused
job does. Resuming deletes the row and signals the kind's open jobs, so those waiting try
again at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from temporalio.client import Client

from activities.pause import RESUME_SIGNAL
from offload.db import QUERIES, Pool
from offload.jobs.batch import run_batch
from offload.jobs.control import JobQuery, visibility_query
from offload.jobs.errors import JobInputError
from offload.kinds import pausable_kinds
from offload.settings import Settings


class PausedKind(BaseModel):
    kind: str
    reason: str = ""
    paused_at: datetime


class PauseResult(BaseModel):
    kind: str
    changed: bool  # False: it was paused (or running) already
    paused_at: datetime | None = None
    signalled: int = 0  # resume: the open jobs told to try again


def check_pausable(kind: str) -> None:
    """Raises JobInputError naming `kind` unless its jobs honour a pause."""
    if kind not in pausable_kinds():
        raise JobInputError(
            f"{kind!r} cannot be paused; pausable kinds: {', '.join(pausable_kinds())}",
            field="kind",
        )


async def pause_kind(pool: Pool, kind: str, reason: str = "") -> PauseResult:
    """Pause `kind`: from now on none of its jobs makes an attempt until it is resumed."""
    check_pausable(kind)
    paused_at = await pool.fetchval(QUERIES.pause_kind, kind, reason)
    if paused_at is None:
        row = await pool.fetchrow(QUERIES.find_paused_kind, kind)
        return PauseResult(kind=kind, changed=False, paused_at=row["paused_at"] if row else None)
    return PauseResult(kind=kind, changed=True, paused_at=paused_at)


async def resume_kind(client: Client, settings: Settings, pool: Pool, kind: str) -> PauseResult:
    """Resume `kind` and signal its open jobs; those waiting on the pause run again at once."""
    check_pausable(kind)
    paused_at = await pool.fetchval(QUERIES.resume_kind, kind)
    # Running ones only: a job still waiting for its start time has not met the gate.
    query = visibility_query(settings, JobQuery(kind=kind, status="running"), datetime.now(UTC))
    # Signalled even when the row was gone already: a resume repeated after a failed one
    # still wakes the jobs the first did not reach.
    signalled = 0
    if (await client.count_workflows(query)).count:
        result = await run_batch(
            client, query, f"offload resume {kind}", signal=RESUME_SIGNAL, signal_arg=kind
        )
        signalled = result.done
    return PauseResult(
        kind=kind, changed=paused_at is not None, paused_at=paused_at, signalled=signalled
    )


async def paused_kinds(pool: Pool) -> list[PausedKind]:
    """The kinds paused now, by name."""
    return [PausedKind(**dict(row)) for row in await pool.fetch(QUERIES.list_paused_kinds)]
