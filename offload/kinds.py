"""Each job kind, declared once: what the worker runs, the outbox starts and `offload stats` counts.

A declaration names the kind's input model, its workflow, the activities its worker builds
(by task queue), how its workflow id is made, where its retry policy comes from, whether it
runs on a Temporal Schedule, and whether a failure for good is dead-lettered. The worker
registers the workflows and activities of `KINDS`; the outbox starts rows of the kinds with a
workflow id scheme; `offload stats` and the job metrics count their workflow types; the
schedules come from the kinds with a `schedule`. Adding a kind is one workflow module, one
activity module and one entry here (docs/adding-a-job-kind.md).

Workflows do not import this module: it imports every activity module, which the workflow
sandbox must not load. So a kind's name is declared on its workflow class (`KIND`), which
the workflow's `run_job(...)` and the declaration here both read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import workflow

from activities.digest import DigestActivities
from activities.email import EmailActivities
from activities.leads import LeadActivities
from activities.market import MarketActivities
from activities.reports import ReportActivities
from activities.sessions import SessionActivities
from offload import queues
from offload.db import Pool
from offload.models import RetryConfig
from offload.settings import Settings
from workflows.email import SendEmailWorkflow
from workflows.maintenance import (
    CleanupExpiredSessionsWorkflow,
    DailyReportWorkflow,
    RefreshMarketDataWorkflow,
    SendDigestEmailsWorkflow,
    SyncLeadScoresWorkflow,
)
from workflows.reports import GenerateReportWorkflow

# Temporal's priority keys: 1 runs first, 5 last; a job started without one gets 3.
HIGHEST_PRIORITY = 1
LOWEST_PRIORITY = 5

# The activities of a kind by task queue, built once per worker with their dependencies.
Activities = Mapping[str, Sequence[Callable[..., Any]]]


def settings_retry(settings: Settings) -> RetryConfig:
    """The retry policy of the `OFFLOAD_RETRY_*` settings: each kind's unless it says otherwise."""
    return settings.retry


@dataclass(frozen=True)
class JobKind:
    """One kind of job, as everything outside its workflow sees it.

    Its workflow class declares the rest: the kind's name (`KIND`) and, in its run method's
    signature, the input model.

    Attributes:
        workflow: its workflow class; the class's workflow type labels the metrics.
        activities: builds the activities its workflow calls, by the queue they run on.
        workflow_id: the id of the job `job`; starting the same id twice runs one job.
            None for a scheduled kind: the schedule names each run `<name>-<time>`.
        retry: the retry policy its jobs carry (a workflow cannot read settings).
        schedule: `hourly` (on the hour) or `daily` (at midnight) for a kind a Temporal
            Schedule starts; None for a kind started on demand.
        description: what one job does, for `offload schedules list` and the docs.
        dead_letters: whether a job that fails for good lands in the dead-letter queue
            (its workflow wraps its body in `run_job`).
        priority: the priority key its jobs start with unless told otherwise.
        pausable: whether its activities honour `offload pause` (they check the pause gate
            of `activities.pause` before each attempt, and its workflow runs the step through
            `workflows.pause.run_unless_paused`).
    """

    workflow: type[Any]
    activities: Callable[[Settings, Pool], Activities]
    workflow_id: Callable[[Any], str] | None = None
    retry: Callable[[Settings], RetryConfig] = settings_retry
    schedule: Literal["hourly", "daily"] | None = None
    description: str = ""
    dead_letters: bool = True
    priority: int = 3
    pausable: bool = False

    def __post_init__(self) -> None:
        # A kind declared wrong fails where it is declared, not when its first job runs.
        if not isinstance(getattr(self.workflow, "KIND", None), str):
            raise TypeError(f"{self.workflow.__name__} declares no KIND (its job kind's name)")
        _ = self.input

    @property
    def name(self) -> str:
        """The kind's name, its workflow's `KIND`: outbox rows, dead-letter entries
        (`offload dlq list --kind`), the schedule id of a scheduled kind."""
        name: str = self.workflow.KIND
        return name

    @cached_property
    def input(self) -> type[BaseModel]:
        """The pydantic model its workflow's run method takes (the outbox reads rows into it)."""
        arg_types = workflow._Definition.must_from_class(self.workflow).arg_types or []
        if len(arg_types) != 1 or not issubclass(arg_types[0], BaseModel):
            raise TypeError(f"{self.workflow.__name__}.run does not take one pydantic model")
        model: type[BaseModel] = arg_types[0]
        return model

    @property
    def workflow_type(self) -> str:
        """The workflow type name its runs have in Temporal (the class name unless renamed)."""
        definition = workflow._Definition.must_from_class(self.workflow)
        assert definition.name is not None
        return definition.name

    @property
    def run(self) -> Any:
        """The workflow's run method, as `Client.start_workflow` takes it."""
        return self.workflow.run


def email_activities(settings: Settings, pool: Pool) -> Activities:
    email = EmailActivities(settings, pool, keep_connections=settings.smtp_max_connections)
    # The workflow worker runs the first attempt as a local activity (the fast path).
    return {queues.WORKFLOWS: [email.try_send_email], queues.EMAIL: [email.send_email]}


def report_activities(settings: Settings, pool: Pool) -> Activities:
    reports = ReportActivities(settings, pool)
    return {
        # Plan and finalize run as local activities in the workflow worker; the default
        # queue serves them to runs started before that.
        queues.WORKFLOWS: [reports.plan_report, reports.finalize_report],
        queues.REPORTS: [reports.aggregate_report_chunk],
        queues.DEFAULT: [reports.plan_report, reports.finalize_report],
    }


def digest_activities(settings: Settings, pool: Pool) -> Activities:
    digest = DigestActivities(settings, pool)
    return {queues.DEFAULT: [digest.plan_digest], queues.EMAIL: [digest.send_digest_batch]}


EMAIL = JobKind(
    workflow=SendEmailWorkflow,
    activities=email_activities,
    workflow_id=lambda job: job.workflow_id,
    description="one templated email, sent at most once per idempotency key",
    # A person waits for a confirmation email; a digest or a report can wait for it.
    priority=2,
    pausable=True,
)
REPORT = JobKind(
    workflow=GenerateReportWorkflow,
    activities=report_activities,
    workflow_id=lambda job: job.workflow_id,
    description="a leads report in chunks: a CSV file and a report-ready email",
)
SYNC_LEAD_SCORES = JobKind(
    workflow=SyncLeadScoresWorkflow,
    activities=lambda settings, pool: {queues.DEFAULT: [LeadActivities(pool).score_leads]},
    schedule="hourly",
    description="rescore leads updated in the hour before the scheduled time",
    priority=4,
)
CLEANUP_EXPIRED_SESSIONS = JobKind(
    workflow=CleanupExpiredSessionsWorkflow,
    activities=lambda settings, pool: {
        queues.DEFAULT: [SessionActivities(pool).delete_expired_sessions]
    },
    schedule="hourly",
    description="delete expired sessions in batches",
    priority=5,
)
DAILY_REPORT = JobKind(
    workflow=DailyReportWorkflow,
    # Its reports are jobs of the `report` kind, run by that kind's activities.
    activities=lambda settings, pool: {queues.DEFAULT: [LeadActivities(pool).list_agent_ids]},
    schedule="daily",
    description="yesterday's report per agent",
    priority=4,
)
REFRESH_MARKET_DATA = JobKind(
    workflow=RefreshMarketDataWorkflow,
    activities=lambda settings, pool: {
        queues.DEFAULT: [MarketActivities(settings, pool).refresh_market_data]
    },
    schedule="daily",
    description="fetch MARKET_DATA_URL",
    priority=4,
)
SEND_DIGEST_EMAILS = JobKind(
    workflow=SendDigestEmailsWorkflow,
    activities=digest_activities,
    schedule="daily",
    description="new leads to each agent",
    priority=4,
)

# Every kind Offload runs. Code reads it when it runs, not when it is imported, so a test
# can declare a kind of its own beside these (tests/integration/test_adding_a_job_kind.py).
KINDS: list[JobKind] = [
    EMAIL,
    REPORT,
    SYNC_LEAD_SCORES,
    CLEANUP_EXPIRED_SESSIONS,
    DAILY_REPORT,
    REFRESH_MARKET_DATA,
    SEND_DIGEST_EMAILS,
]


class UnknownKindError(KeyError):
    """No job kind of that name is declared."""


def named(name: str) -> JobKind:
    """The declared kind called `name`.

    Raises:
        UnknownKindError: no kind of that name (the message lists the known ones).
    """
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise UnknownKindError(f"unknown job kind {name!r}; known: {', '.join(names())}")


def names() -> list[str]:
    """The names of the declared kinds, in declaration order."""
    return [kind.name for kind in KINDS]


def kind_of(workflow_type: str) -> JobKind | None:
    """The declared kind whose workflow has this type, if any."""
    for kind in KINDS:
        if kind.workflow_type == workflow_type:
            return kind
    return None


def pausable_kinds() -> list[str]:
    """The names of the kinds `offload pause` can hold back."""
    return [kind.name for kind in KINDS if kind.pausable]
