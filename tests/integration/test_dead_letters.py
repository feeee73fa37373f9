"""The dead-letter queue on the dev server, embedded PostgreSQL and a real SMTP sink."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from offload import queues
from offload.db import Pool
from offload.dev.stack import SmtpSink, TemporalDevServer
from offload.jobs.dead_letters import dead_letter_handle, list_dead_letters
from offload.jobs.email import enqueue_email
from offload.models import (
    DeadLetterBatch,
    DeadLetterEntry,
    DeadLetterState,
    DeadLetterSummary,
    EmailJob,
    RedriveRequest,
)
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from tests.api import eventually
from tests.dead_letters import REFUSED, email_to, refused_email, timed_out_report
from tests.harness import run_offload, running_worker
from workflows.dead_letters import DeadLetterWorkflow


async def dead_count(pool: Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM dead_letters"))


async def summary(client: Client, settings: Settings) -> DeadLetterSummary:
    return await dead_letter_handle(client, settings).query(DeadLetterWorkflow.summary)


@pytest.mark.usefixtures("worker")
async def test_refused_email_is_dead_lettered_then_redriven_and_delivered_once(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    job, handle = await refused_email(client, settings, smtp_sink)

    async def listed() -> bool:
        return len(await list_dead_letters(pool)) == 1

    await eventually(listed)
    [row] = await list_dead_letters(pool)
    assert (row["kind"], row["status"], row["attempts"]) == ("email", "dead", 1)
    assert row["workflow_id"] == job.workflow_id
    assert row["error_type"] == "SmtpPermanentError"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert (await summary(client, settings)).counts == {"email": {"dead": 1}}

    shown = await asyncio.to_thread(run_offload, settings, "dlq", "show", row["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert EmailJob.model_validate(json.loads(shown.stdout)["input"]) == job
    listing = await asyncio.to_thread(run_offload, settings, "dlq", "list")
    assert row["id"] in listing.stdout and "SmtpPermanentError" in listing.stdout

    smtp_sink.rules.set("ada@example.com", None)
    done = await asyncio.to_thread(run_offload, settings, "dlq", "redrive", row["id"])
    assert done.returncode == 0, done.stderr
    redrive_id = f"{job.workflow_id}-redrive-1"
    assert f"redriven  {row['id']} as {redrive_id}" in done.stdout
    result = await client.get_workflow_handle(redrive_id).result()
    assert result["status"] == "sent"

    # A second redrive, by id or by kind, starts nothing.
    again = await asyncio.to_thread(run_offload, settings, "dlq", "redrive", row["id"])
    assert again.returncode == 2
    assert f"{row['id']} is redriven" in again.stderr
    by_kind = await asyncio.to_thread(run_offload, settings, "dlq", "redrive", "--kind", "email")
    assert by_kind.returncode == 0, by_kind.stderr
    assert "nothing to redrive" in by_kind.stdout
    assert len(smtp_sink.messages()) == 1
    [row] = await list_dead_letters(pool)
    assert (row["status"], row["redrive_workflow_id"]) == ("redriven", redrive_id)
    assert (await summary(client, settings)).counts == {"email": {"dead": 0, "redriven": 1}}


@pytest.mark.usefixtures("worker")
async def test_bad_ids_and_arguments_give_clear_errors_and_change_nothing(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    smtp_sink.rules.set("ada@example.com", REFUSED)
    for _ in range(2):
        with pytest.raises(WorkflowFailureError):
            await (
                await enqueue_email(client, settings, email_to(settings, "ada@example.com"))
            ).result()

    async def both_listed() -> bool:
        return await dead_count(pool) == 2

    await eventually(both_listed)
    first, second = (r["id"] for r in await list_dead_letters(pool))
    discarded = await asyncio.to_thread(run_offload, settings, "dlq", "discard", first)
    assert discarded.returncode == 0, discarded.stderr
    state = "SELECT id, status, resolved_at FROM dead_letters ORDER BY id"
    before = await pool.fetch(state)

    unknown = "dl-000000000000"
    cases = [
        (["redrive", second, unknown], f"unknown dead-letter id(s): {unknown}"),
        (["redrive", first], f"{first} is discarded"),
        (["discard", first, second], f"{first} is discarded"),
        (["redrive", "42"], "ID '42' is not a dead-letter id"),
        (["redrive", second, "--kind", "email"], "IDs or --kind"),
        (["redrive", second, "--error-type", "Timeout"], "--error-type goes with --kind K"),
        (["redrive", "--kind", "email", "--rate", "fast"], "'fast' is not a rate"),
        (["show", unknown], f"ID {unknown} names no dead-letter entry"),
        (["list", "--status", "lost"], "invalid choice: 'lost'"),
    ]
    for args, message in cases:
        done = await asyncio.to_thread(run_offload, settings, "dlq", *args)
        assert done.returncode == 2, (args, done)
        assert message in done.stderr, (args, done.stderr)

    assert (
        await pool.fetch("SELECT id, status, resolved_at FROM dead_letters ORDER BY id") == before
    )
    counts = (await summary(client, settings)).counts
    assert counts == {"email": {"dead": 1, "discarded": 1}}


@pytest.mark.usefixtures("worker")
async def test_200_jobs_failing_at_once_give_200_entries(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    smtp_sink.rules.set("ada@example.com", REFUSED)
    jobs = [email_to(settings, "ada@example.com") for _ in range(200)]
    handles = await asyncio.gather(*(enqueue_email(client, settings, job) for job in jobs))
    outcomes = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
    assert all(isinstance(o, WorkflowFailureError) for o in outcomes)

    async def all_listed() -> bool:
        return await dead_count(pool) >= 200

    await eventually(all_listed, 90)
    # The same failed run signalled again (an activity retry does this) adds nothing.
    rows = await pool.fetch("SELECT workflow_id, run_id FROM dead_letters")
    assert sorted(r["workflow_id"] for r in rows) == sorted(j.workflow_id for j in jobs)
    repeat = DeadLetterEntry(
        kind="email",
        workflow_id=rows[0]["workflow_id"],
        run_id=rows[0]["run_id"],
        workflow_type="SendEmailWorkflow",
        failed_at=datetime.now(UTC),
    )
    await dead_letter_handle(client, settings).signal(
        DeadLetterWorkflow.record, DeadLetterBatch(entries=[repeat])
    )

    async def summarised() -> bool:
        return (await summary(client, settings)).counts == {"email": {"dead": 200}}

    await eventually(summarised)
    await asyncio.sleep(0.5)  # time for a wrongly doubled entry to land
    assert await dead_count(pool) == 200
    assert (await summary(client, settings)).counts == {"email": {"dead": 200}}


TOTAL = 2000


@pytest.mark.usefixtures("worker")
async def test_2000_entries_continue_as_new_with_bounded_history(
    client: Client, settings: Settings, pool: Pool
) -> None:
    # Signals of 10 entries each (a burst of failures), a low limit: the test stays fast.
    limit = 100
    workflow_id = queues.dead_letters_id(settings.task_queue_prefix)
    queue = queues.named(queues.WORKFLOWS, settings.task_queue_prefix)
    batches = [
        DeadLetterBatch(entries=[timed_out_report(str(n + i)) for i in range(10)])
        for n in range(0, TOTAL, 10)
    ]
    for start in range(0, len(batches), 20):
        await asyncio.gather(
            *(
                client.start_workflow(
                    DeadLetterWorkflow.run,
                    DeadLetterState(max_history_events=limit),
                    id=workflow_id,
                    task_queue=queue,
                    start_signal="record",
                    start_signal_args=[batch],
                )
                for batch in batches[start : start + 20]
            )
        )

    async def all_stored() -> bool:
        return await dead_count(pool) == TOTAL

    await eventually(all_stored, 90)
    handle = client.get_workflow_handle(workflow_id)

    async def summarised() -> bool:
        return (await summary(client, settings)).counts == {"report": {"dead": TOTAL}}

    await eventually(summarised)
    # A run closes at the limit plus what arrives while it closes (one round of signals at
    # most), so every run holds fewer than `bound` events.
    bound = limit + 60
    assert (await summary(client, settings)).continued_as_new >= len(batches) // bound
    events = [e async for e in handle.fetch_history_events()]
    assert len(events) < bound
    listing = await asyncio.to_thread(run_offload, settings, "dlq", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    assert len(json.loads(listing.stdout)) == TOTAL


async def test_survives_worker_and_server_restarts(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    server = TemporalDevServer(port=free_port(), ui_port=None, db_file=tmp_path / "t.sqlite")
    await server.start()
    own = settings.model_copy(update={"temporal_address": server.address})
    smtp_sink.rules.set("ada@example.com", REFUSED)
    jobs = [email_to(own, "ada@example.com") for _ in range(2)]
    try:
        client = await connect(own)
        async with running_worker(client, own, pool):
            with pytest.raises(WorkflowFailureError):
                await (await enqueue_email(client, own, jobs[0])).result()

            async def first_listed() -> bool:
                return await dead_count(pool) == 1

            await eventually(first_listed)
        # The worker is gone: a second job fails for good once a worker is back.
        second = await enqueue_email(client, own, jobs[1])
        await server.stop()
        await server.start()
        client = await connect(own)
        async with running_worker(client, own, pool):
            with pytest.raises(WorkflowFailureError):
                await client.get_workflow_handle(second.id).result()

            async def both_summarised() -> bool:
                return (await summary(client, own)).counts == {"email": {"dead": 2}}

            await eventually(both_summarised)
            smtp_sink.rules.set("ada@example.com", None)
            result = await dead_letter_handle(client, own).execute_update(
                DeadLetterWorkflow.redrive, RedriveRequest(kind="email")
            )
            assert sorted(j.workflow_id for j in result.redriven) == sorted(
                f"{j.workflow_id}-redrive-1" for j in jobs
            )
            for job in result.redriven:
                assert (await client.get_workflow_handle(job.workflow_id).result())["status"] == (
                    "sent"
                )
    finally:
        await server.stop()
    assert len(smtp_sink.messages()) == 2
