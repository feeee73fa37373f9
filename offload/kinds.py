"""Job kinds as operators name them: the workflow type of each, its default priority, pausing.

A kind's name is the one `run_job` records in the dead-letter queue and `offload jobs`,
`offload pause` and `GET /jobs` take. Workflows import this module (passed through), so it
imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

# Temporal's priority keys: 1 runs first, 5 last; a job started without one gets 3.
HIGHEST_PRIORITY = 1
LOWEST_PRIORITY = 5

# The error type a paused kind's activity fails with before it does anything, and the signal
# `offload resume` sends to the kind's running jobs so they try again at once.
KIND_PAUSED = "KindPaused"
RESUME_SIGNAL = "offload-kind-resumed"


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    Attributes:
        name: the kind as operators and the dead-letter queue name it.
        workflow_type: the Temporal workflow type that runs it.
        priority: the priority key its jobs start with unless told otherwise.
        pausable: whether its activities honour `offload pause` (checked before each attempt).
    """

    name: str
    workflow_type: str
    priority: int = 3
    pausable: bool = False


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        # A person waits for a confirmation email; a digest or a report can wait for it.
        JobKind("email", "SendEmailWorkflow", priority=2, pausable=True),
        JobKind("report", "GenerateReportWorkflow", priority=3),
        JobKind("send-digest-emails", "SendDigestEmailsWorkflow", priority=4),
        JobKind("daily-report", "DailyReportWorkflow", priority=4),
        JobKind("sync-lead-scores", "SyncLeadScoresWorkflow", priority=4),
        JobKind("cleanup-expired-sessions", "CleanupExpiredSessionsWorkflow", priority=5),
        JobKind("refresh-market-data", "RefreshMarketDataWorkflow", priority=4),
    )
}


def kind_of(workflow_type: str) -> str:
    """The kind a workflow type runs (the type itself for a workflow that is no job)."""
    for kind in KINDS.values():
        if kind.workflow_type == workflow_type:
            return kind.name
    return workflow_type


def pausable_kinds() -> list[str]:
    return [kind.name for kind in KINDS.values() if kind.pausable]
