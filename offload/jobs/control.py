"""Jobs as an operator sees them, from Temporal visibility: list, show, cancel.

A job is a workflow of a kind in `offload.kinds` on this deployment's `offload-workflows`
queue (the task-queue prefix keeps deployments that share a namespace apart). Its status
is Temporal's, except that a job waiting for its start delay is `scheduled`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.history.v1 import MarkerRecordedEventAttributes
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.pause import KIND_PAUSED
from offload import queues
from offload.jobs.batch import BatchResult, run_batch
from offload.jobs.errors import JobInputError
from offload.jobs.start import workflow_ui_url
from offload.kinds import KINDS, kind_of, named, names
from offload.settings import Settings

# `--status` values and the visibility status each one means.
STATUSES: dict[str, str] = {
    "scheduled": "Running",
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "canceled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
}
# Running and scheduled alike: every job that has not closed (what a bulk cancel reaches).
OPEN = "open"
# Histories read at once to count attempts while listing.
_PARALLEL_READS = 8


class JobQuery(BaseModel):
    """Which jobs: of a kind, in a status, started within `since`; newest first, `limit` of them."""

    kind: str | None = None
    status: str | None = None
    since: timedelta | None = Field(None, gt=timedelta(0))
    limit: int = Field(50, ge=1, le=1000)


class JobInfo(BaseModel):
    """One job: what it is, how it stands, how many attempts its steps have made."""

    id: str
    run_id: str
    kind: str
    workflow_type: str
    status: str
    priority: int
    attempts: int
    started_at: datetime
    scheduled_for: datetime | None = None
    closed_at: datetime | None = None
    url: str


class CancelOutcome(BaseModel):
    id: str
    outcome: str  # "cancel requested", "not found", or "already <status>"


def visibility_query(settings: Settings, query: JobQuery, now: datetime) -> str:
    """The visibility query for `query`; every value in it comes from a fixed set or a clock.

    Raises:
        JobInputError: an unknown kind or status (naming it and the known ones).
    """
    if query.kind is not None and query.kind not in names():
        raise JobInputError(
            f"unknown kind {query.kind!r}; known: {', '.join(names())}", field="kind"
        )
    if query.status not in (None, OPEN, *STATUSES):
        raise JobInputError(
            f"unknown status {query.status!r}; known: {', '.join(STATUSES)}", field="status"
        )
    kinds = [named(query.kind)] if query.kind else list(KINDS)
    types = ", ".join(f"'{kind.workflow_type}'" for kind in kinds)
    workflow_queue = queues.named(queues.WORKFLOWS, settings.task_queue_prefix)
    parts = [f"WorkflowType IN ({types})", f"TaskQueue = '{workflow_queue}'"]
    if query.status in STATUSES:
        parts.append(f"ExecutionStatus = '{STATUSES[query.status]}'")
    # Both are Running to Temporal; a delayed job's first task is due at its ExecutionTime.
    if query.status == "scheduled":
        parts.append(f"ExecutionTime > '{_timestamp(now)}'")
    elif query.status == "running":
        parts.append(f"ExecutionTime <= '{_timestamp(now)}'")
    elif query.status == OPEN:
        parts.append("ExecutionStatus = 'Running'")
    if query.since is not None:
        parts.append(f"StartTime > '{_timestamp(now - query.since)}'")
    return " AND ".join(parts)


def _kind_name(workflow_type: str) -> str:
    kind = kind_of(workflow_type)
    return kind.name if kind is not None else workflow_type


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _status(
    status: WorkflowExecutionStatus | None, execution_time: datetime | None, now: datetime
) -> str:
    if status in (None, WorkflowExecutionStatus.RUNNING):
        return "scheduled" if execution_time is not None and execution_time > now else "running"
    return status.name.lower()


# The marker the SDK records for each local activity, its attempt in the JSON of "data".
LOCAL_ACTIVITY_MARKER = "core_local_activity"


def _local_attempts(marker: MarkerRecordedEventAttributes) -> int:
    try:
        data = json.loads(marker.details["data"].payloads[0].data)
        return int(data.get("attempt", 1))
    except (KeyError, IndexError, ValueError, AttributeError):
        return 1


async def count_attempts(
    handle: WorkflowHandle[object, object], description: WorkflowExecutionDescription | None
) -> int:
    """Attempts the job's activities have made: finished steps from history (local
    activities from their markers), running ones from `description`. An attempt that stood
    down because its kind was paused is no attempt; a local first attempt that declined (a
    rate-limited worker, a paused kind) counts as one.
    """
    made: dict[int, int] = {}
    async for event in handle.fetch_history_events():
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == LOCAL_ACTIVITY_MARKER:
                made[event.event_id] = _local_attempts(marker)
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            made[started.scheduled_event_id] = started.attempt
        elif event.HasField("activity_task_failed_event_attributes"):
            failed = event.activity_task_failed_event_attributes
            if failed.failure.application_failure_info.type == KIND_PAUSED:
                made[failed.scheduled_event_id] = made.get(failed.scheduled_event_id, 1) - 1
    total = sum(made.values())
    if description is not None:
        for pending in description.raw_description.pending_activities:
            running = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            total += pending.attempt if running else pending.attempt - 1
    return total


async def _job_info(
    client: Client, settings: Settings, found: WorkflowExecution, now: datetime
) -> JobInfo:
    handle = client.get_workflow_handle(found.id, run_id=found.run_id)
    status = _status(found.status, found.execution_time, now)
    # Visibility lists no priority: the description of each job has it.
    description = (
        found if isinstance(found, WorkflowExecutionDescription) else await handle.describe()
    )
    scheduled_for = found.execution_time
    if scheduled_for is not None and scheduled_for <= found.start_time:
        scheduled_for = None
    return JobInfo(
        id=found.id,
        run_id=found.run_id,
        kind=_kind_name(found.workflow_type),
        workflow_type=found.workflow_type,
        status=status,
        priority=description.raw_info.priority.priority_key or 3,
        attempts=await count_attempts(handle, description),
        started_at=found.start_time,
        scheduled_for=scheduled_for,
        closed_at=found.close_time,
        url=workflow_ui_url(settings, found.id, found.run_id),
    )


async def list_jobs(
    client: Client, settings: Settings, query: JobQuery, now: datetime
) -> list[JobInfo]:
    """The jobs `query` matches, newest first (at most `query.limit`).

    Raises:
        JobInputError: an unknown kind or status.
    """
    found = [
        execution
        async for execution in client.list_workflows(
            visibility_query(settings, query, now), limit=query.limit
        )
    ]
    reads = asyncio.Semaphore(_PARALLEL_READS)

    async def info(execution: WorkflowExecution) -> JobInfo:
        async with reads:
            return await _job_info(client, settings, execution, now)

    return list(await asyncio.gather(*(info(execution) for execution in found)))


async def count_jobs(client: Client, settings: Settings, query: JobQuery, now: datetime) -> int:
    """How many jobs `query` matches (however many more than its limit)."""
    counted = await client.count_workflows(visibility_query(settings, query, now))
    return counted.count


def _is_job(settings: Settings, description: WorkflowExecutionDescription) -> bool:
    workflow_queue = queues.named(queues.WORKFLOWS, settings.task_queue_prefix)
    return (
        description.task_queue == workflow_queue and kind_of(description.workflow_type) is not None
    )


async def show_job(
    client: Client, settings: Settings, workflow_id: str, now: datetime
) -> JobInfo | None:
    """The job with this workflow id (its latest run), or None when there is none."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if not _is_job(settings, description):
        return None
    return await _job_info(client, settings, description, now)


async def cancel_job(
    client: Client, settings: Settings, workflow_id: str, reason: str = ""
) -> CancelOutcome:
    """Ask the job to cancel; it ends Canceled once a step in progress has ended cleanly.

    A job waiting for its start delay, to retry, or for its paused kind stops at once.
    """
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return CancelOutcome(id=workflow_id, outcome="not found")
        raise
    if not _is_job(settings, description):
        return CancelOutcome(id=workflow_id, outcome="not found")
    if description.status not in (None, WorkflowExecutionStatus.RUNNING):
        status = description.status.name.lower() if description.status else "closed"
        return CancelOutcome(id=workflow_id, outcome=f"already {status}")
    await client.get_workflow_handle(workflow_id, run_id=description.run_id).cancel(reason=reason)
    return CancelOutcome(id=workflow_id, outcome="cancel requested")


async def cancel_matching(
    client: Client, settings: Settings, query: JobQuery, now: datetime, reason: str
) -> BatchResult:
    """Cancel every open job `query` matches (running and scheduled, unless it says which),
    with one Temporal batch operation.

    Raises:
        JobInputError: `query` has no kind, or names a closed status.
    """
    if query.kind is None:
        raise JobInputError("a bulk cancel names the kind of job it cancels", field="kind")
    if query.status not in (None, OPEN, "running", "scheduled"):
        raise JobInputError(
            f"only open jobs can be cancelled, not {query.status} ones", field="status"
        )
    query = query.model_copy(update={"status": query.status or OPEN})
    return await run_batch(client, visibility_query(settings, query, now), reason, cancel=True)
