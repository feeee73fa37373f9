"""Starting a job: one idempotent start for every job kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from offload import queues
from offload.settings import Settings

# The idempotent start of every job: the same workflow id is the same job, whatever became of
# it (a running one is returned; a closed one, completed or failed, is never run again).
ID_CONFLICT_POLICY = WorkflowIDConflictPolicy.USE_EXISTING
ID_REUSE_POLICY = WorkflowIDReusePolicy.REJECT_DUPLICATE

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

    The same workflow id is the same job, whatever became of it: a start while the job
    runs returns the running one (USE_EXISTING); a start after it closed, completed or
    failed, returns the closed one instead of running it again (REJECT_DUPLICATE). So an
    outbox row started twice, or a retried start whose first try landed, never runs a job
    again: a failed job runs again only by `offload dlq redrive`, under its redrive id.

    The start asks to be eager: when a worker of this same `client` polls the workflow
    queue and has a free slot (the API and the relay inside `offload dev` or a worker
    process), the server hands it the first workflow task in the start's answer, a trip
    through matching saved. A client with no such worker does not ask (the SDK checks), and
    the task goes through the queue as usual; the job is durable either way, since the
    server records the start before it answers.
    """
    try:
        return await client.start_workflow(
            run,
            job,
            id=workflow_id,
            task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
            id_conflict_policy=ID_CONFLICT_POLICY,
            id_reuse_policy=ID_REUSE_POLICY,
            request_eager_start=True,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(run, workflow_id)


def workflow_ui_url(settings: Settings, workflow_id: str, run_id: str | None = None) -> str:
    """The Web UI page of a workflow (of one run, when `run_id` is given)."""
    base = f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
    if run_id:
        return f"{base}/workflows/{workflow_id}/{run_id}/history"
    return f"{base}/workflows/{workflow_id}"
