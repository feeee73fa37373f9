"""Starting a job: one idempotent start for every job kind."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from offload import queues
from offload.jobs.errors import JobInputError
from offload.kinds import HIGHEST_PRIORITY, LOWEST_PRIORITY, named
from offload.settings import Settings

# The idempotent start of every job: the same workflow id is the same job, whatever became of
# it (a running one is returned; a closed one, completed or failed, is never run again).
ID_CONFLICT_POLICY = WorkflowIDConflictPolicy.USE_EXISTING
ID_REUSE_POLICY = WorkflowIDReusePolicy.REJECT_DUPLICATE

ReturnT = TypeVar("ReturnT")
SelfT = TypeVar("SelfT")


class StartOptions(BaseModel):
    """When and how urgently a job runs: the same options for the CLI, the API and callers.

    `delay` or `at` (not both) hold the job back: it is visible at once (as scheduled),
    can be cancelled, and starts once at its time. `priority` 1 runs before 5 when a queue
    has a backlog; unset, the job takes its kind's default (`offload.kinds`).
    """

    delay: timedelta | None = Field(None, ge=timedelta(0))
    at: datetime | None = None
    priority: int | None = Field(None, ge=HIGHEST_PRIORITY, le=LOWEST_PRIORITY)

    def start_delay(self, now: datetime) -> timedelta | None:
        """How long after `now` the job starts; None for at once.

        Raises:
            JobInputError: both `delay` and `at`, or an `at` without a time zone (`at`).
        """
        if self.delay is not None and self.at is not None:
            raise JobInputError("give a delay or a time to run at, not both", field="at")
        if self.at is not None:
            if self.at.tzinfo is None:
                raise JobInputError(
                    f"{self.at.isoformat()} has no time zone (add Z or +01:00)", field="at"
                )
            return max(self.at - now, timedelta(0)) or None
        return self.delay or None


async def start_job(
    client: Client,
    settings: Settings,
    run: Callable[[SelfT, Any], Awaitable[ReturnT]],
    job: Any,
    *,
    workflow_id: str,
    kind: str | None = None,
    options: StartOptions | None = None,
) -> WorkflowHandle[SelfT, ReturnT]:
    """Start the job workflow `run` with `job` under `workflow_id`, at most once.

    The same workflow id is the same job, whatever became of it: a start while the job
    runs returns the running one (USE_EXISTING); a start after it closed, completed or
    failed, returns the closed one instead of running it again (REJECT_DUPLICATE). So an
    outbox row started twice, or a retried start whose first try landed, never runs a job
    again: a failed job runs again only by `offload dlq redrive`, under its redrive id.
    A delayed job (`options`) is the same: visible at once, started once at its time. The
    priority is `options.priority`, else the default of `kind`; its activities inherit it.

    The start asks to be eager (a delayed one cannot be): when a worker of this same
    `client` polls the workflow queue and has a free slot (the API and the relay inside
    `offload dev` or a worker process), the server hands it the first workflow task in the
    start's answer, a trip through matching saved. A client with no such worker does not
    ask (the SDK checks), and the task goes through the queue as usual; the job is durable
    either way, since the server records the start before it answers.

    Raises:
        JobInputError: `options` give both a delay and a time, or a time without a zone.
    """
    options = options or StartOptions()
    priority = options.priority or (named(kind).priority if kind else None)
    start_delay = options.start_delay(datetime.now(UTC))
    try:
        return await client.start_workflow(
            run,
            job,
            id=workflow_id,
            task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
            id_conflict_policy=ID_CONFLICT_POLICY,
            id_reuse_policy=ID_REUSE_POLICY,
            priority=Priority(priority_key=priority) if priority else Priority.default,
            start_delay=start_delay,
            request_eager_start=start_delay is None,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(run, workflow_id)


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str, field: str) -> timedelta:
    """`90s`, `10m`, `2h`, `1d`, `1h30m`.

    Raises:
        JobInputError: anything else (naming `field`).
    """
    found = _DURATION.match(text.strip())
    if not text.strip() or found is None:
        raise JobInputError(f"{text!r} is not a duration like 90s, 10m, 2h or 1d", field=field)
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_time(text: str, field: str) -> datetime:
    """An ISO 8601 time with its zone (`2026-12-24T09:00:00Z`).

    Raises:
        JobInputError: not such a time, or one without a zone (naming `field`).
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise JobInputError(
            f"{text!r} is not a time like 2026-12-24T09:00:00Z", field=field
        ) from None
    if moment.tzinfo is None:
        raise JobInputError(f"{text!r} has no time zone (add Z or +01:00)", field=field)
    return moment


def workflow_ui_url(settings: Settings, workflow_id: str, run_id: str | None = None) -> str:
    """The Web UI page of a workflow (of one run, when `run_id` is given)."""
    base = f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
    if run_id:
        return f"{base}/workflows/{workflow_id}/{run_id}/history"
    return f"{base}/workflows/{workflow_id}"
