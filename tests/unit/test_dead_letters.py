"""Pure parts of the dead-letter queue: entry ids, redrive ids, CLI checks, bounded results."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from offload import queues
from offload.jobs.dead_letters import check_ids
from offload.jobs.errors import JobInputError
from offload.models import (
    MAX_LISTED_REDRIVES,
    DeadLetterEntry,
    DeadLetterSummary,
    RedrivenJob,
    RedriveResult,
    dead_letter_id,
    redrive_workflow_id,
)


def test_an_entry_id_is_stable_per_run_and_differs_between_runs() -> None:
    entry = DeadLetterEntry(
        kind="email",
        workflow_id="email-1",
        run_id="run-a",
        workflow_type="SendEmailWorkflow",
        failed_at=datetime.now(UTC),
    )
    assert entry.id == dead_letter_id("email-1", "run-a")
    assert entry.id != dead_letter_id("email-1", "run-b")
    assert check_ids([entry.id, entry.id]) == [entry.id]


def test_redrive_ids_count_up_from_the_original_id() -> None:
    assert redrive_workflow_id("email-k") == "email-k-redrive-1"
    assert redrive_workflow_id("email-k-redrive-1") == "email-k-redrive-2"
    assert redrive_workflow_id("email-k-redrive-9") == "email-k-redrive-10"


def test_each_prefix_has_its_own_dead_letter_workflow() -> None:
    prefix = queues.prefix_of("test-1-offload-workflows")
    assert queues.dead_letters_id(prefix) == "test-1-dead-letters"
    assert queues.dead_letters_id() == "dead-letters"


def test_the_summary_counts_by_kind_and_status() -> None:
    summary = DeadLetterSummary()
    summary.count("email", "dead", 2)
    summary.count("email", "dead", -1)
    summary.count("email", "redriven", 1)
    summary.count("report", "dead", 1)
    assert summary.counts == {"email": {"dead": 1, "redriven": 1}, "report": {"dead": 1}}
    assert summary.total == 3


def test_malformed_ids_are_refused_by_name() -> None:
    with pytest.raises(JobInputError, match="ID '42', 'dl-xyz' is not a dead-letter id"):
        check_ids(["dl-0123456789ab", "42", "dl-xyz"])


def test_a_redrive_result_counts_every_page_and_lists_a_bounded_number() -> None:
    total = RedriveResult()
    for page in range(5):
        jobs = [RedrivenJob(entry_id=f"dl-{page}-{n}", workflow_id="w") for n in range(500)]
        total.add(RedriveResult(redriven=jobs, count=len(jobs)))
    assert total.count == 2500
    assert len(total.redriven) == MAX_LISTED_REDRIVES
    assert len(total.model_dump_json()) < 200_000
