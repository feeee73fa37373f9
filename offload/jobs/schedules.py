"""The five Temporal Schedules that replace the old crons: declared here, applied and listed.

`apply_schedules` makes the server's schedules match the ones declared here and says, for each,
whether it was created, updated or already as declared; running it twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
)
from temporalio.common import Priority
from temporalio.service import RPCError, RPCStatusCode

from offload import kinds, queues
from offload.models import ReportTuning, ScheduledRun
from offload.settings import Settings

# The memo key that marks a schedule as Offload's (and under which task-queue prefix), so
# `--prune` never deletes a schedule someone else made in the namespace.
MEMO_KEY = "offload-schedule-prefix"

Outcome = Literal["created", "updated", "unchanged", "deleted"]


@dataclass(frozen=True)
class Declared:
    """One schedule: its name (the id without prefix), when, and which workflow it starts."""

    name: str
    hourly: bool
    run: Callable[[Any, ScheduledRun], Awaitable[Any]]
    what: str


# The kinds a Temporal Schedule starts, as `offload.kinds` declares them.
DECLARED: list[Declared] = [
    Declared(kind.name, kind.schedule == "hourly", kind.run, kind.description)
    for kind in kinds.KINDS
    if kind.schedule is not None
]


def schedule_id(settings: Settings, name: str) -> str:
    return f"{settings.task_queue_prefix}{name}"


def spec_for(declared: Declared, settings: Settings) -> ScheduleSpec:
    """Hourly on the hour, or daily at midnight, in the configured time zone."""
    hours = (ScheduleRange(0, 23),) if declared.hourly else (ScheduleRange(0),)
    calendar = ScheduleCalendarSpec(
        second=(ScheduleRange(0),), minute=(ScheduleRange(0),), hour=hours
    )
    return ScheduleSpec(calendars=[calendar], time_zone_name=settings.schedule_time_zone)


def job_for(declared: Declared, settings: Settings) -> ScheduledRun:
    if declared.name == kinds.SEND_DIGEST_EMAILS.name:
        size, parallel = settings.digest_batch_size, settings.digest_parallel_batches
    else:
        size, parallel = settings.maintenance_batch_size, 1
    return ScheduledRun(
        time_zone=settings.schedule_time_zone,
        batch_size=size,
        parallel_batches=parallel,
        retry=settings.retry,
        **ReportTuning.of(settings).as_report_fields(),
    )


def desired_schedule(declared: Declared, settings: Settings) -> Schedule:
    """The schedule as declared: its workflow on the prefixed `offload-workflows` queue."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            declared.run,
            job_for(declared, settings),
            # The server appends the scheduled time, so each run has its own id.
            id=schedule_id(settings, declared.name),
            task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
            # Scheduled jobs wait behind the ones a person waits for (offload/kinds.py).
            priority=Priority(priority_key=kinds.named(declared.name).priority),
        ),
        spec=spec_for(declared, settings),
        # BUFFER_ALL: a firing due while the last run still runs (no worker, a slow run, a
        # catch-up after an outage) waits its turn instead of being skipped, so every window
        # runs once, in order (docs/schedules.md, "Every window once").
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.BUFFER_ALL,
            catchup_window=settings.schedule_catchup_window,
        ),
    )


def comparable(schedule: Schedule, workflow_name: str, args: Sequence[Any]) -> dict[str, Any]:
    """What `apply` compares: spec, action and policies (not the paused state)."""
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    return {
        "spec": schedule.spec,
        "workflow": workflow_name,
        "id": action.id,
        "task_queue": action.task_queue,
        "args": list(args),
        "timeouts": (action.execution_timeout, action.run_timeout, action.task_timeout),
        "priority": action.priority.priority_key,
        "overlap": schedule.policy.overlap,
        "catchup_window": schedule.policy.catchup_window,
        "pause_on_failure": schedule.policy.pause_on_failure,
    }


def desired_view(declared: Declared, settings: Settings) -> dict[str, Any]:
    schedule = desired_schedule(declared, settings)
    job = job_for(declared, settings)
    return comparable(schedule, declared.run.__qualname__.split(".")[0], [job.model_dump()])


async def server_view(client: Client, description: ScheduleDescription) -> dict[str, Any] | None:
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow):
        return None
    try:
        args = await client.data_converter.decode(action.args, [ScheduledRun] * len(action.args))
    except Exception:
        # Whatever the server holds, if it is not a ScheduledRun it is not as declared.
        args = [json.loads(p.data) for p in action.args] if action.args else []
        return comparable(description.schedule, action.workflow, ["undecodable", *args])
    dumped = [a.model_dump() if isinstance(a, ScheduledRun) else a for a in args]
    return comparable(description.schedule, action.workflow, dumped)


async def apply_schedules(
    client: Client, settings: Settings, *, prune: bool = False
) -> list[tuple[str, Outcome]]:
    """Create or update every declared schedule; with `prune`, delete undeclared ones."""
    outcomes: list[tuple[str, Outcome]] = []
    for declared in DECLARED:
        sid = schedule_id(settings, declared.name)
        handle = client.get_schedule_handle(sid)
        desired = desired_schedule(declared, settings)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            await client.create_schedule(sid, desired, memo={MEMO_KEY: settings.task_queue_prefix})
            outcomes.append((sid, "created"))
            continue
        if await server_view(client, description) == desired_view(declared, settings):
            outcomes.append((sid, "unchanged"))
            continue

        def keep_state(update: ScheduleUpdateInput, desired: Schedule = desired) -> ScheduleUpdate:
            # Paused stays paused: `apply` changes what runs and when, not whether it runs.
            desired.state = update.description.schedule.state
            return ScheduleUpdate(schedule=desired)

        await handle.update(keep_state)
        outcomes.append((sid, "updated"))
    if prune:
        declared_ids = {schedule_id(settings, d.name) for d in DECLARED}
        async for listed in await client.list_schedules():
            if listed.id in declared_ids:
                continue
            memo = await listed.memo()
            if memo.get(MEMO_KEY) == settings.task_queue_prefix:
                await client.get_schedule_handle(listed.id).delete()
                outcomes.append((listed.id, "deleted"))
    return outcomes


async def last_result(client: Client, description: ScheduleDescription) -> dict[str, Any] | None:
    if not description.info.recent_actions:
        return None
    last = description.info.recent_actions[-1]
    action = last.action
    if not isinstance(action, ScheduleActionExecutionStartWorkflow):
        return None
    run = client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id)
    status: WorkflowExecutionStatus | None = (await run.describe()).status
    return {
        "scheduled_at": last.scheduled_at,
        "workflow_id": action.workflow_id,
        "status": status.name if status else "UNKNOWN",
    }


async def list_schedules(client: Client, settings: Settings) -> list[dict[str, Any]]:
    """Each declared schedule as the server has it: paused, next runs, behind, last result."""
    found = []
    for declared in DECLARED:
        sid = schedule_id(settings, declared.name)
        try:
            description = await client.get_schedule_handle(sid).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            found.append({"id": sid, "exists": False})
            continue
        state = description.schedule.state
        # The SDK's ScheduleInfo has no buffer size: the raw description has it.
        raw = description.raw_description.info
        found.append(
            {
                "id": sid,
                "exists": True,
                "what": declared.what,
                "paused": state.paused,
                "note": state.note or "",
                "next_runs": description.info.next_action_times[:3],
                "running": len(description.info.running_actions),
                "buffered": raw.buffer_size,
                "missed": description.info.num_actions_missed_catchup_window,
                "skipped": description.info.num_actions_skipped_overlap,
                "dropped": raw.buffer_dropped,
                "last": await last_result(client, description),
            }
        )
    return found
