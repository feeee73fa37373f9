"""Job inputs and outputs: the one place each type that crosses Temporal is defined.

Workflows import this module through `workflow.unsafe.imports_passed_through()`, so it
imports only the standard library and pydantic. New fields always get defaults, so
histories recorded before they existed still replay.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def field_of(model: type[BaseModel], name: str) -> Any:
    """`model`'s field `name`, default and bounds, for a model that carries it too.

    `Settings` carries `RetryConfig`'s fields as `retry_<name>`; `ReportJob`, `ScheduledRun`
    and `Settings` carry `ReportTuning`'s. Declared as `x: float = field_of(Model, "x")`.
    """
    return copy.copy(model.model_fields[name])


class RetryConfig(BaseModel):
    """Exponential backoff of a job's activities (the starter fills it from settings)."""

    model_config = ConfigDict(frozen=True)

    initial_interval_seconds: float = Field(1.0, gt=0)
    backoff_coefficient: float = Field(2.0, ge=1)
    maximum_interval_seconds: float = Field(60.0, gt=0)
    maximum_attempts: int = Field(5, ge=1)

    @property
    def initial_interval(self) -> timedelta:
        return timedelta(seconds=self.initial_interval_seconds)

    @property
    def maximum_interval(self) -> timedelta:
        return timedelta(seconds=self.maximum_interval_seconds)


def content_key(*parts: Any) -> str:
    """A stable key for content: the same parts always give the same 32 hex digits."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# An idempotency key is written into an email's `X-Offload-Idempotency-Key` header and a
# workflow id: visible ASCII only, so no CR/LF can end the header block early.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]*$"
IDEMPOTENCY_KEY_MAX_LENGTH = 200


class EmailJob(BaseModel):
    """One email to send: a template rendered with `data`, to one recipient.

    `idempotency_key` names the email: the same key is sent at most once. When none is
    given, it is derived from the content, so queueing the same email twice sends it once.
    """

    to: str = Field(min_length=1, max_length=320)
    template: str = Field(min_length=1, max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str = Field(
        "", max_length=IDEMPOTENCY_KEY_MAX_LENGTH, pattern=IDEMPOTENCY_KEY_PATTERN
    )
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @model_validator(mode="after")
    def _derive_key(self) -> EmailJob:
        if not self.idempotency_key:
            self.idempotency_key = content_key(self.to, self.template, self.data)
        return self

    @property
    def workflow_id(self) -> str:
        return f"email-{self.idempotency_key}"


class EmailResult(BaseModel):
    """What became of an email: sent now, or found already sent under its key."""

    status: Literal["sent", "already_sent"]
    message_id: str
    to: str
    sent_at: datetime


class ReportChunk(BaseModel):
    """One slice of a report: the leads created in `[start, end)`."""

    index: int = Field(ge=0)
    start: datetime
    end: datetime


class ReportPlan(BaseModel):
    """A report's chunks and whom to tell when it is ready (the plan activity's answer)."""

    chunks: list[ReportChunk]
    estimated_rows: int = 0
    agent_name: str = ""
    agent_email: str = ""


class ReportChunkInput(BaseModel):
    """What a chunk activity aggregates: one agent's leads in one chunk of a report."""

    report_id: str
    user_id: int
    chunk: ReportChunk


class ReportCursor(BaseModel):
    """A chunk's heartbeat: where its last page ended, and its counters; nothing more.

    The chunk's partial result is in PostgreSQL (`report_cells`), so this stays a few
    dozen bytes however many distinct cells the chunk has. `cells` is what heartbeats of
    older releases carried; it is read by nobody and stays empty.
    """

    after_created_at: datetime
    after_id: int = 0
    rows: int = 0
    pages: int = 0
    cells: list[tuple[str, str, str, int, int]] = Field(default_factory=list)


class ReportChunkResult(BaseModel):
    """A finished chunk: its rows and pages, and where its last attempt resumed."""

    index: int
    rows: int
    pages: int
    attempt: int = 1
    resumed_from_rows: int = 0


class ReportFinalizeInput(BaseModel):
    """Merge a report's stored chunks into its CSV file and its `reports` row."""

    report_id: str
    user_id: int
    start: date
    end: date
    chunks: int


class ReportResult(BaseModel):
    """A finished report: its CSV file and totals."""

    report_id: str
    file: str
    total_leads: int
    average_score: str  # a decimal with two places, as in the file
    top_source: str
    days: int = 0
    lines: int = 0
    chunks: int = 0
    rows_read: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    email_message_id: str = ""


ReportStatus = Literal["planning", "running", "finalising", "emailing", "done"]


class ReportProgress(BaseModel):
    """The answer of a report's `progress` query."""

    report_id: str
    status: ReportStatus
    chunks_done: int = 0
    chunks_total: int = 0
    rows_read: int = 0
    estimated_rows: int = 0
    started_at: datetime | None = None
    eta: datetime | None = None
    result: ReportResult | None = None


# The last day a report can cover: its window ends at the next midnight, which must exist.
LAST_REPORT_DAY = date(9999, 12, 30)


class ReportTuning(BaseModel):
    """How a report runs: chunks at once, heartbeat timeout, chunks per continue-as-new run.

    `ReportJob` carries these fields; `Settings` (from `OFFLOAD_REPORT_*`) and `ScheduledRun`
    (for the daily reports) carry them as `report_<field>`.
    """

    max_parallel_chunks: int = Field(4, ge=1)
    heartbeat_timeout_seconds: float = Field(30.0, gt=0)
    chunks_per_run: int = Field(200, ge=1)

    @classmethod
    def of(cls, source: object) -> ReportTuning:
        """The tuning that `source` carries as `report_<field>` attributes."""
        return cls(**{name: getattr(source, f"report_{name}") for name in cls.model_fields})

    def as_report_fields(self) -> dict[str, Any]:
        """The tuning as `report_<field>` values, as `ScheduledRun` takes them."""
        return {f"report_{name}": value for name, value in self.model_dump().items()}


# A report id: what `report-<id>` (its workflow id) and `/reports/<id>` allow.
REPORT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


def report_workflow_id(report_id: str) -> str:
    """The workflow id of report `report_id`: queueing the same report twice runs it once."""
    return f"report-{report_id}"


class ReportJob(BaseModel):
    """A leads report for one agent (`user_id`) over the days `start` to `end`, inclusive.

    Its workflow id is `report-<report_id>`, so queueing the same report twice runs it once.
    """

    report_id: str = Field(pattern=REPORT_ID_PATTERN)
    user_id: int = Field(ge=1)
    start: date
    end: date
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # Tuning the starter fills from settings (a workflow cannot read them).
    chunk_rows: int | None = Field(None, ge=1)  # None: the worker's OFFLOAD_REPORT_CHUNK_ROWS
    max_parallel_chunks: int = field_of(ReportTuning, "max_parallel_chunks")
    heartbeat_timeout_seconds: float = field_of(ReportTuning, "heartbeat_timeout_seconds")
    chunks_per_run: int = field_of(ReportTuning, "chunks_per_run")
    # Carried over continue-as-new, so a new run neither plans again nor re-runs chunks.
    plan: ReportPlan | None = None
    done_chunks: list[ReportChunkResult] = Field(default_factory=list)
    started_at: datetime | None = None

    @model_validator(mode="after")
    def _check_range(self) -> ReportJob:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def workflow_id(self) -> str:
        return report_workflow_id(self.report_id)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


DeadLetterStatus = Literal["dead", "redriven", "discarded"]


def dead_letter_id(workflow_id: str, run_id: str) -> str:
    """The entry id of a failed run: the same run always gets the same short id."""
    return f"dl-{content_key(workflow_id, run_id)[:12]}"


_REDRIVE_SUFFIX = re.compile(r"^(?P<base>.*)-redrive-(?P<n>\d+)$")


def redrive_workflow_id(workflow_id: str) -> str:
    """`<id>-redrive-1` for a first redrive; a redriven job that failed again gets `-redrive-2`."""
    match = _REDRIVE_SUFFIX.match(workflow_id)
    if match:
        return f"{match['base']}-redrive-{int(match['n']) + 1}"
    return f"{workflow_id}-redrive-1"


class DeadLetterEntry(BaseModel):
    """A job that ran out of retries (or failed for good), as the dead-letter queue keeps it.

    `input` is the job's original input as JSON, so a redrive starts `workflow_type`
    with exactly what the job was given.
    """

    kind: str = Field(min_length=1, max_length=50)
    workflow_id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    workflow_type: str = Field(min_length=1)
    # The workflow task queue the job ran on: a redrive runs there, and its prefix names
    # the dead-letter workflow.
    task_queue: str = ""
    input: dict[str, Any] = Field(default_factory=dict)
    error_type: str = ""
    error_message: str = ""
    attempts: int = 0
    # The event that started the last failed attempt; the recorder reads the attempt from it.
    started_event_id: int = 0
    failed_at: datetime
    status: DeadLetterStatus = "dead"
    redrive_workflow_id: str | None = None

    @property
    def id(self) -> str:
        return dead_letter_id(self.workflow_id, self.run_id)


class DeadLetterSummary(BaseModel):
    """The dead-letter queue at a glance: counts by kind and status, the newest entry ids."""

    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    newest_ids: list[str] = Field(default_factory=list)
    continued_as_new: int = 0

    @property
    def total(self) -> int:
        return sum(sum(by_status.values()) for by_status in self.counts.values())

    def count(self, kind: str, status: str, delta: int) -> None:
        by_status = self.counts.setdefault(kind, {})
        by_status[status] = by_status.get(status, 0) + delta


class DeadLetterState(BaseModel):
    """What `DeadLetterWorkflow` carries from one run to the next across continue-as-new."""

    summary: DeadLetterSummary = Field(default_factory=DeadLetterSummary)
    # Entries signalled but not yet stored when the run continued as new.
    pending: list[DeadLetterEntry] = Field(default_factory=list)
    # Continue as new past this many history events, even before the server suggests it.
    max_history_events: int = Field(10_000, ge=100)


class RedriveRequest(BaseModel):
    """Entries to redrive: by id, or every dead entry of one kind (and error type).

    `rate` spreads the starts: at most that many per second, so a recovering provider is
    not flooded. None starts them as fast as the server takes them.
    """

    ids: list[str] = Field(default_factory=list)
    kind: str | None = None
    error_type: str | None = None
    rate: float | None = Field(None, gt=0, le=10_000)


class RedrivenJob(BaseModel):
    entry_id: str
    workflow_id: str


# A result lists at most this many jobs (and counts them all), so it stays far below the
# 2 MB payload limit however many entries a redrive by kind starts.
MAX_LISTED_REDRIVES = 1000


class RedriveResult(BaseModel):
    """The jobs a redrive started: all of them counted, the first `MAX_LISTED_REDRIVES` listed."""

    redriven: list[RedrivenJob] = Field(default_factory=list)
    count: int = 0

    def add(self, other: RedriveResult) -> None:
        """Fold in the result of one more page."""
        room = MAX_LISTED_REDRIVES - len(self.redriven)
        self.redriven.extend(other.redriven[: max(room, 0)])
        self.count += other.count or len(other.redriven)


class RedrivePage(BaseModel):
    """One page of a redrive: the entries to start now, at most `rate` per second."""

    ids: list[str] = Field(default_factory=list)
    rate: float | None = None


class DiscardRequest(BaseModel):
    """The entries to discard, by id."""

    ids: list[str] = Field(default_factory=list)


class DiscardResult(BaseModel):
    """The ids of the entries a discard marked discarded, in order."""

    discarded: list[str] = Field(default_factory=list)


class DeadLetterRef(BaseModel):
    """An entry's id, kind and status: what the workflow checks before changing it."""

    id: str
    kind: str
    status: DeadLetterStatus
    failed_at: datetime | None = None


class DeadLetterLookup(BaseModel):
    """Entries to look up: these ids, or (with `kind`) the dead entries of that kind.

    By kind, entries come in `(failed_at, id)` order: at most `limit` of them after the
    entry `after`, of `error_type` if set, and none that failed after `failed_before` (a
    redriven job failing again is not swept into the redrive that started it).
    """

    ids: list[str] = Field(default_factory=list)
    kind: str | None = None
    error_type: str | None = None
    after: DeadLetterRef | None = None
    failed_before: datetime | None = None
    limit: int | None = None


class DeadLetterRefs(BaseModel):
    """The entries a `DeadLetterLookup` found, in its order."""

    refs: list[DeadLetterRef] = Field(default_factory=list)


class StoredDeadLetters(BaseModel):
    """The entries a store added; entries already stored (a repeated signal) are left out."""

    added: list[DeadLetterRef] = Field(default_factory=list)


class DeadLetterBatch(BaseModel):
    """Entries to record or store at once (one failure is a batch of one)."""

    entries: list[DeadLetterEntry] = Field(default_factory=list)


class EntryIds(BaseModel):
    ids: list[str] = Field(default_factory=list)


class ScheduledRun(BaseModel):
    """The input of a scheduled maintenance workflow.

    A run started by its schedule takes its window from `TemporalScheduledStartTime`; a run
    started by hand takes it from `scheduled_time`, or from the workflow's clock when unset.
    `time_zone` is the schedule's, so "yesterday" means the same day to the schedule and the job.
    """

    scheduled_time: datetime | None = None
    time_zone: str = "UTC"
    # send-digest-emails: only these agents (a recipient's dead-lettered digest, redriven).
    agent_ids: list[int] | None = None
    batch_size: int = Field(500, ge=1, le=100_000)
    parallel_batches: int = Field(1, ge=1, le=100)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # daily-report: the report jobs' tuning, from the OFFLOAD_REPORT_* settings at apply time.
    report_max_parallel_chunks: int = field_of(ReportTuning, "max_parallel_chunks")
    report_heartbeat_timeout_seconds: float = field_of(ReportTuning, "heartbeat_timeout_seconds")
    report_chunks_per_run: int = field_of(ReportTuning, "chunks_per_run")


class TimeWindow(BaseModel):
    """A half-open interval of time `[start, end)` that one run covers."""

    start: datetime
    end: datetime


class LeadScoreBatch(BaseModel):
    """Score the leads updated in `window`, `batch_size` at a time."""

    window: TimeWindow
    batch_size: int = 500


class LeadScoreResult(BaseModel):
    window: TimeWindow
    examined: int = 0
    scored: int = 0  # leads not yet scored for this window before this run


class SessionCleanup(BaseModel):
    """Delete the sessions that expired before `cutoff`, `batch_size` rows per transaction."""

    cutoff: datetime
    batch_size: int = 500


class SessionCleanupResult(BaseModel):
    cutoff: datetime
    deleted: int = 0
    batches: int = 0


class AgentList(BaseModel):
    agent_ids: list[int] = Field(default_factory=list)


class DailyReportResult(BaseModel):
    day: date
    started: list[str] = Field(default_factory=list)  # report ids started by this run
    already_started: list[str] = Field(default_factory=list)  # started by an earlier run


class MarketRefresh(BaseModel):
    """Fetch `MARKET_DATA_URL` and store it as the market data of `day`."""

    day: date


class MarketRefreshResult(BaseModel):
    day: date
    areas: int = 0


class DigestPlan(BaseModel):
    """The digest of `day` (in the schedule's time zone), covering leads created before `until`."""

    day: date
    until: datetime
    # Only these agents, when set (a recipient's digest redriven from the dead-letter queue).
    only_agent_ids: list[int] | None = None


class DigestBatch(BaseModel):
    """One batch of digest recipients, sent over one SMTP connection.

    A first pass returns each recipient the server deferred or refused in
    `DigestBatchResult.failures` and goes on with the next one; a retry of one recipient
    (`raise_failures`) raises instead, so that activity's retry policy retries it alone.
    """

    plan: DigestPlan
    agent_ids: list[int]
    raise_failures: bool = False


class RecipientFailure(BaseModel):
    """One recipient's digest the server did not take: `retryable` for a 4xx, not for a 5xx."""

    agent_id: int
    error_type: str
    message: str
    retryable: bool


class DigestBatchProgress(BaseModel):
    """A digest batch's heartbeat: the index of the last recipient done, and what happened."""

    after_index: int = -1
    sent: int = 0
    refused: int = 0
    failures: list[RecipientFailure] = Field(default_factory=list)


class DigestBatchResult(BaseModel):
    sent: int = 0
    already_sent: int = 0
    no_leads: int = 0  # nothing new since the last digest: nothing sent
    refused: int = 0  # the address or the server refused it for good
    failures: list[RecipientFailure] = Field(default_factory=list)


class DigestResult(BaseModel):
    day: date
    agents: int = 0
    sent: int = 0
    already_sent: int = 0
    no_leads: int = 0
    refused: int = 0
    # Recipients whose digest went to the dead-letter queue (refused, or deferred past retries).
    dead_lettered: int = 0


class KindPausedDetails(BaseModel):
    """The detail of a `KindPaused` failure: which kind, and the attempt that stood down."""

    kind: str
    attempt: int = Field(1, ge=1)
