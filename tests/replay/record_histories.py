"""Re-record the histories under tests/replay/histories/ from real runs of today's code.

Run it on purpose, never as part of `make test` (its name does not match `test_*.py`):

    OFFLOAD_RECORD_HISTORIES=1 .venv/bin/pytest tests/replay/record_histories.py
    OFFLOAD_RECORD_HISTORIES=v2 .venv/bin/pytest tests/replay/record_histories.py -k dead_letters

The first overwrites `histories/<name>.json`; the second writes `<name>-v2.json` beside it.

Each function runs one workflow type end to end on the dev server, with the real worker,
PostgreSQL and SMTP sink of tests/conftest.py, and writes the history of the run to
`histories/<name>.json`. Record BEFORE changing a workflow: the replay tests then prove the
change keeps replaying what is already running. A history that is meant to break replay
goes behind `workflow.patched(...)`, and its old recording stays.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from offload import queues
from offload.db import Pool
from offload.dev.stack import SampleFeedServer, SmtpSink
from offload.jobs.dead_letters import dead_letter_handle
from offload.jobs.email import enqueue_email
from offload.jobs.reports import enqueue_report, new_report_job
from offload.jobs.start import start_job
from offload.models import (
    DeadLetterBatch,
    DeadLetterState,
    DiscardRequest,
    RedriveRequest,
    ScheduledRun,
)
from offload.settings import Settings
from tests.api import eventually
from tests.dead_letters import REFUSED, email_to, refused_email, timed_out_report
from tests.harness import running_worker
from tests.reports import seed_leads
from workflows.dead_letters import DeadLetterWorkflow
from workflows.maintenance import (
    CleanupExpiredSessionsWorkflow,
    DailyReportWorkflow,
    RefreshMarketDataWorkflow,
)
from workflows.reports import GenerateReportWorkflow

pytestmark = pytest.mark.skipif(
    not os.environ.get("OFFLOAD_RECORD_HISTORIES"),
    reason="re-records histories only with OFFLOAD_RECORD_HISTORIES=1",
)

HISTORIES = Path(__file__).parent / "histories"


def history_path(name: str) -> Path:
    """`histories/<name>.json`, or `<name>-<tag>.json` for OFFLOAD_RECORD_HISTORIES=<tag>.

    A tag keeps the old recordings beside the new: a workflow change must replay both.
    """
    tag = os.environ.get("OFFLOAD_RECORD_HISTORIES", "1")
    return HISTORIES / (f"{name}.json" if tag == "1" else f"{name}-{tag}.json")


async def write(name: str, handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    history_path(name).write_text(history.to_json())


@pytest.fixture
def settings(settings: Settings, feed: SampleFeedServer) -> Settings:
    return settings.model_copy(update={"market_data_url": feed.url})


@pytest.mark.usefixtures("worker")
async def test_record_emails(client: Client, settings: Settings, smtp_sink: SmtpSink) -> None:
    sent = await enqueue_email(client, settings, email_to(settings, "ada@example.com"))
    await sent.result()
    await write("send-email", sent)
    _, failed = await refused_email(client, settings, smtp_sink, "gone@example.com")
    await write("send-email-dead-lettered", failed)
    # Deferred on the first attempt (451), then sent by `send_email` on the email queue.
    smtp_sink.rules.set("later@example.com", "451 4.3.0 Try later")
    deferred = await enqueue_email(client, settings, email_to(settings, "later@example.com"))
    await eventually(lambda: retry_waits_on_a_timer(deferred), what="the first attempt deferred")
    smtp_sink.rules.set("later@example.com", None)
    await deferred.result()
    await write("send-email-deferred", deferred)


async def retry_waits_on_a_timer(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the job's first attempt has failed and its retry waits on a timer."""
    history = await handle.fetch_history()
    return any(e.HasField("timer_started_event_attributes") for e in history.events)


async def test_record_dead_letters(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    """Failures by signal, a redrive by id, a discard, a redrive by kind in pages at a rate,
    a continue-as-new."""
    own = settings.model_copy(update={"dlq_max_history_events": 100})
    async with running_worker(client, own, pool):
        smtp_sink.rules.set("gone@example.com", REFUSED)
        for _ in range(5):
            with pytest.raises(WorkflowFailureError):
                await (await enqueue_email(client, own, email_to(own, "gone@example.com"))).result()

        async def all_stored() -> bool:
            return int(await pool.fetchval("SELECT count(*) FROM dead_letters")) == 5

        await eventually(all_stored)
        dlq = dead_letter_handle(client, own)
        first_run = (await dlq.describe()).run_id
        smtp_sink.rules.set("gone@example.com", None)
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM dead_letters ORDER BY id")]
        await dlq.execute_update(DeadLetterWorkflow.redrive, RedriveRequest(ids=[ids[0]]))
        await dlq.execute_update(DeadLetterWorkflow.discard, DiscardRequest(ids=[ids[1]]))
        # At 0.4 starts a second, pages of two: the three left go in two pages.
        await dlq.execute_update(DeadLetterWorkflow.redrive, RedriveRequest(kind="email", rate=0.4))
        # A burst of failures by signal until the run continues as new.
        n = 0
        while (await dlq.describe()).run_id == first_run:
            await client.start_workflow(
                DeadLetterWorkflow.run,
                DeadLetterState(max_history_events=100),
                id=dlq.id,
                task_queue=queues.named(queues.WORKFLOWS, own.task_queue_prefix),
                start_signal="record",
                start_signal_args=[
                    DeadLetterBatch(
                        entries=[timed_out_report(f"recorded-{n + i}") for i in range(2)]
                    )
                ],
            )
            n += 2
            await asyncio.sleep(0.1)
        await write(
            "dead-letters-continued-as-new", client.get_workflow_handle(dlq.id, run_id=first_run)
        )


@pytest.mark.usefixtures("worker")
async def test_record_reports(client: Client, settings: Settings, pool: Pool) -> None:
    await seed_leads(pool, leads=600)
    job = new_report_job(
        settings,
        report_id=f"recorded-{uuid.uuid4().hex[:8]}",
        user_id=1,
        start=date(2025, 9, 1),
        end=date(2026, 6, 30),
    ).model_copy(update={"chunk_rows": 100, "chunks_per_run": 2})
    handle = await enqueue_report(client, settings, pool, job)
    first_run = (await handle.describe()).run_id
    await handle.result()
    await write("report-continued-as-new", client.get_workflow_handle(handle.id, run_id=first_run))
    # An agent with no row fails for good in planning: the report is dead-lettered.
    missing = job.model_copy(
        update={"report_id": f"recorded-{uuid.uuid4().hex[:8]}", "user_id": 999}
    )
    failed = await start_job(
        client, settings, GenerateReportWorkflow.run, missing, workflow_id=missing.workflow_id
    )
    with pytest.raises(WorkflowFailureError):
        await failed.result()
    await write("report-dead-lettered", failed)


@pytest.mark.usefixtures("worker")
async def test_record_maintenance(client: Client, settings: Settings, pool: Pool) -> None:
    await seed_leads(pool, leads=200)
    queue = queues.named(queues.WORKFLOWS, settings.task_queue_prefix)
    for name, run in (
        ("cleanup-expired-sessions", CleanupExpiredSessionsWorkflow.run),
        ("refresh-market-data", RefreshMarketDataWorkflow.run),
        ("daily-report", DailyReportWorkflow.run),
    ):
        handle = await client.start_workflow(
            run,  # type: ignore[arg-type]
            ScheduledRun(batch_size=50, retry=settings.retry),
            id=f"{name}-{uuid.uuid4()}",
            task_queue=queue,
        )
        await handle.result()
        await write(name, handle)
