"""Job inputs and outputs: the one place each type that crosses Temporal is defined.

Workflows import this module through `workflow.unsafe.imports_passed_through()`, so it
imports only the standard library and pydantic. New fields always get defaults, so
histories recorded before they existed still replay.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class EmailJob(BaseModel):
    """One email to send: a template rendered with `data`, to one recipient.

    `idempotency_key` names the email: the same key is sent at most once. When none is
    given, it is derived from the content, so queueing the same email twice sends it once.
    """

    to: str = Field(min_length=1, max_length=320)
    template: str = Field(min_length=1, max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str = Field("", max_length=200)
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


class ReportJob(BaseModel):
    """A leads report for one agent (`user_id`) over the days `start` to `end`, inclusive.

    Its workflow id is `report-<report_id>`, so queueing the same report twice runs it once.
    """

    report_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    user_id: int = Field(ge=1)
    start: date
    end: date
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @property
    def workflow_id(self) -> str:
        return f"report-{self.report_id}"


DeadLetterStatus = Literal["dead", "redriven", "discarded"]


def dead_letter_id(workflow_id: str, run_id: str) -> str:
    """The entry id of a failed run: the same run always gets the same short id."""
    return f"dl-{content_key(workflow_id, run_id)[:12]}"


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
    """Entries to redrive: by id, or every dead entry of one kind."""

    ids: list[str] = Field(default_factory=list)
    kind: str | None = None


class RedrivenJob(BaseModel):
    entry_id: str
    workflow_id: str


class RedriveResult(BaseModel):
    redriven: list[RedrivenJob] = Field(default_factory=list)


class DiscardRequest(BaseModel):
    ids: list[str] = Field(default_factory=list)


class DiscardResult(BaseModel):
    discarded: list[str] = Field(default_factory=list)


class DeadLetterRef(BaseModel):
    """An entry's id, kind and status: what the workflow checks before changing it."""

    id: str
    kind: str
    status: DeadLetterStatus


class DeadLetterLookup(BaseModel):
    """Entries to look up: these ids, or (with `kind`) every dead entry of that kind."""

    ids: list[str] = Field(default_factory=list)
    kind: str | None = None


class DeadLetterRefs(BaseModel):
    refs: list[DeadLetterRef] = Field(default_factory=list)


class StoredDeadLetters(BaseModel):
    """The entries a store added; entries already stored (a repeated signal) are left out."""

    added: list[DeadLetterRef] = Field(default_factory=list)


class StoreDeadLetters(BaseModel):
    entries: list[DeadLetterEntry] = Field(default_factory=list)


class EntryIds(BaseModel):
    ids: list[str] = Field(default_factory=list)
