"""Starting a job: one idempotent start for every job kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from offload import queues
from offload.settings import Settings

ReturnT = TypeVar("ReturnT")
SelfT = TypeVar("SelfT")


async def start_job(
    client: Client,
    settings: Settings,
    run: Callable[[SelfT, Any], Awaitable[ReturnT]],
    job: Any,
    *,
    workflow_id: str,
) -> WorkflowHandle[SelfT, ReturnT]:
    """Start the job workflow `run` with `job` under `workflow_id`, at most once.

    A start while the job runs returns the running one (USE_EXISTING); a start after it
    completed returns the completed one instead of running it again. Only a job that
    failed may start afresh under the same id.
    """
    try:
        return await client.start_workflow(
            run,
            job,
            id=workflow_id,
            task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(run, workflow_id)


def workflow_ui_url(settings: Settings, workflow_id: str, run_id: str | None = None) -> str:
    """The Web UI page of a workflow (of one run, when `run_id` is given)."""
    base = f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
    if run_id:
        return f"{base}/workflows/{workflow_id}/{run_id}/history"
    return f"{base}/workflows/{workflow_id}"
