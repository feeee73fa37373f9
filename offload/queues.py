"""Task queue names, defined once.

Workflows run on `offload-workflows`; activities are routed by what they use. A prefix
(`OFFLOAD_TASK_QUEUE_PREFIX`, a uuid in tests) puts a whole set of queues side by side
with others in one namespace: a workflow finds its activity queues from its own queue
with `sibling`, so nothing else needs to know the prefix.
"""

from __future__ import annotations

WORKFLOWS = "offload-workflows"
EMAIL = "offload-email"
REPORTS = "offload-reports"
DEFAULT = "offload-default"

# `offload worker --queues email,reports` names queues by kind.
BY_KIND: dict[str, str] = {
    "workflows": WORKFLOWS,
    "email": EMAIL,
    "reports": REPORTS,
    "default": DEFAULT,
}


def named(queue: str, prefix: str = "") -> str:
    """The full name of `queue` under `prefix`."""
    return f"{prefix}{queue}"


def prefix_of(workflow_task_queue: str) -> str:
    """The prefix of a workflow task queue (`test-1-offload-workflows` -> `test-1-`)."""
    if not workflow_task_queue.endswith(WORKFLOWS):
        return ""
    return workflow_task_queue[: -len(WORKFLOWS)]


def sibling(workflow_task_queue: str, queue: str) -> str:
    """The queue `queue` beside the workflow task queue a workflow runs on."""
    return named(queue, prefix_of(workflow_task_queue))


# The long-lived dead-letter workflow's id; each prefix has its own.
DEAD_LETTERS = "dead-letters"


def dead_letters_id(prefix: str = "") -> str:
    """The workflow id of the dead-letter workflow under `prefix`."""
    return f"{prefix}{DEAD_LETTERS}"
