"""What the dead-letter tests share: an email the SMTP sink refuses, and a failed report entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from offload.dev.stack import SmtpSink
from offload.jobs.email import enqueue_email
from offload.models import DeadLetterEntry, EmailJob
from offload.settings import Settings

# What the sink answers a refused recipient: a permanent failure, dead-lettered at once.
REFUSED = "550 5.1.1 No such user"


def email_to(settings: Settings, to: str = "ada@example.com") -> EmailJob:
    """A lead-confirmation email to `to`, with the retry policy of `settings`."""
    return EmailJob(
        to=to,
        template="lead-confirmation",
        data={"name": "Ada Lovelace", "property": "12 Harbour View"},
        idempotency_key=str(uuid.uuid4()),
        retry=settings.retry,
    )


async def refused_email(
    client: Client, settings: Settings, sink: SmtpSink, to: str = "ada@example.com"
) -> tuple[EmailJob, WorkflowHandle[Any, Any]]:
    """An email to `to` that `sink` refuses (it stays refused), queued and failed for good."""
    sink.rules.set(to, REFUSED)
    job = email_to(settings, to)
    handle = await enqueue_email(client, settings, job)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    return job, handle


def timed_out_report(report_id: str) -> DeadLetterEntry:
    """The entry of report `report_id` timed out for good, as `run_job` records it."""
    return DeadLetterEntry(
        kind="report",
        workflow_id=f"report-{report_id}",
        run_id=str(uuid.uuid4()),
        workflow_type="GenerateReportWorkflow",
        input={"report_id": report_id},
        error_type="Timeout",
        error_message="timed out (START_TO_CLOSE)",
        attempts=5,
        failed_at=datetime.now(UTC),
    )
