"""The email job on the dev server, embedded PostgreSQL and a real SMTP sink."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState, PendingWorkflowTaskState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.email import enqueue_email
from offload.models import EmailJob
from offload.settings import Settings
from tests.harness import offload_process, run_offload

SCHEDULED = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
TASK_STARTED = PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED


def lead_email(settings: Settings, key: str = "", to: str = "ada@example.com") -> EmailJob:
    """A lead-confirmation email; its key is unique unless given (the dev server is shared)."""
    return EmailJob(
        to=to,
        template="lead-confirmation",
        data={"name": "Ada Lovelace", "property": "12 Harbour View"},
        idempotency_key=key or str(uuid.uuid4()),
        retry=settings.retry,
    )


async def wait_until(predicate: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def sending(handle: WorkflowHandle[Any, Any]) -> bool:
    """The send is under way: the first attempt runs as a local activity inside the started
    workflow task; later ones are pending activities."""
    described = (await handle.describe()).raw_description
    return bool(described.pending_activities) or (
        described.pending_workflow_task.state == TASK_STARTED
    )


async def waiting_for_retry(handle: WorkflowHandle[Any, Any]) -> bool:
    pending = (await handle.describe()).raw_description.pending_activities
    return bool(pending) and pending[0].attempt >= 2 and pending[0].state == SCHEDULED


@pytest.mark.usefixtures("worker")
async def test_one_email_is_delivered_once_with_its_headers_and_body(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    job = lead_email(settings, key="lead-42")
    result = await (await enqueue_email(client, settings, job)).result()

    [message] = smtp_sink.messages()
    assert result.status == "sent"
    assert message["To"] == "ada@example.com"
    assert message["From"] == settings.mail_from
    assert (
        message["Subject"] == "Thanks Ada Lovelace, we received your enquiry about 12 Harbour View"
    )
    assert message["Message-ID"] == result.message_id
    assert message["X-Offload-Idempotency-Key"] == "lead-42"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and "Hi Ada Lovelace," in text.get_content()
    assert html is not None and "<strong>12 Harbour View</strong>" in html.get_content()
    row = await pool.fetchrow("SELECT * FROM email_log WHERE idempotency_key = 'lead-42'")
    assert row is not None
    assert row["message_id"] == result.message_id
    assert row["workflow_id"] == "email-lead-42"


@pytest.mark.usefixtures("worker")
async def test_the_same_key_twice_sends_one_message(
    client: Client, settings: Settings, smtp_sink: SmtpSink
) -> None:
    first = await enqueue_email(client, settings, lead_email(settings, key="same"))
    second = await enqueue_email(client, settings, lead_email(settings, key="same"))
    assert first.id == second.id
    await first.result()
    # Queued again after it completed: still the one workflow, still one message.
    third = await enqueue_email(client, settings, lead_email(settings, key="same"))
    assert (await third.result()).status == "sent"
    assert len(smtp_sink.messages()) == 1


@pytest.mark.usefixtures("worker")
async def test_smtp_down_for_a_while_still_delivers_exactly_once(
    client: Client, settings: Settings, smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    handle = await enqueue_email(client, settings, lead_email(settings))

    async def attempts() -> int:
        pending = (await handle.describe()).raw_description.pending_activities
        return pending[0].attempt if pending else 0

    deadline = time.monotonic() + 30
    while await attempts() < 3:
        assert time.monotonic() < deadline, "the activity was not retried"
        await asyncio.sleep(0.1)
    smtp_sink.start()

    result = await handle.result()
    assert result.status == "sent"
    assert len(smtp_sink.messages()) == 1


async def test_a_killed_worker_loses_nothing(
    client: Client, settings: Settings, smtp_sink: SmtpSink
) -> None:
    # The sink defers the address, so the job is mid-flight (retrying) when the worker dies.
    smtp_sink.rules.set("ada@example.com", "451 4.3.0 Try again later")
    worker = offload_process(settings, "worker")
    try:
        handle = await enqueue_email(client, settings, lead_email(settings))
        deadline = time.monotonic() + 30
        # Kill it between attempts: one killed inside an attempt is only retried after the
        # activity's start-to-close timeout, which would make this test slow, not different.
        while not await waiting_for_retry(handle):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        smtp_sink.rules.set("ada@example.com", None)

        worker = offload_process(settings, "worker")
        result = await asyncio.wait_for(handle.result(), 90)
    finally:
        worker.terminate()
        worker.wait(30)
    assert result.status == "sent"
    assert len(smtp_sink.messages()) == 1
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_sigterm_lets_the_running_send_finish_then_exits_0(
    client: Client, settings: Settings, smtp_sink: SmtpSink, pool: Pool
) -> None:
    smtp_sink.data_delay_seconds = 2
    worker = offload_process(settings, "worker", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        handle = await enqueue_email(client, settings, lead_email(settings, key="graceful"))
        deadline = time.monotonic() + 30
        while not await sending(handle):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # inside the slow DATA answer
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
    finally:
        if worker.poll() is None:
            worker.kill()
        output = worker.communicate()[0].decode()
    assert code == 0, output
    assert "worker stopped" in output
    # The send in flight finished and was logged before the worker left.
    assert len(smtp_sink.messages()) == 1
    assert (
        await pool.fetchval("SELECT count(*) FROM email_log WHERE idempotency_key = 'graceful'")
        == 1
    )


def test_send_email_refuses_bad_input_and_starts_nothing(settings: Settings) -> None:
    cases = [
        (
            ["--to", "not-an-address", "--template", "lead-confirmation"],
            "to: not a valid email address",
        ),
        (["--to", "a@example.com", "--template", "nope"], "unknown template 'nope'"),
        (["--to", "a@example.com", "--template", "lead-confirmation", "--data", "{bad"], "JSON"),
        (
            ["--to", "a@example.com", "--template", "lead-confirmation", "--data", '{"name": "A"}'],
            "'property' is undefined",
        ),
    ]
    for args, message in cases:
        done = run_offload(settings, "send-email", *args, "--idempotency-key", "bad-input")
        assert done.returncode == 2, done
        assert message in done.stderr, done.stderr


@pytest.mark.usefixtures("worker")
async def test_send_email_cli_queues_and_waits(
    client: Client, settings: Settings, smtp_sink: SmtpSink
) -> None:
    done = await asyncio.to_thread(
        run_offload,
        settings,
        "send-email",
        "--to",
        "grace@example.com",
        "--template",
        "lead-confirmation",
        "--data",
        '{"name": "Grace", "property": "Mill House"}',
        "--idempotency-key",
        "cli-1",
        "--wait",
    )
    assert done.returncode == 0, done.stderr
    assert "queued email-cli-1" in done.stdout
    assert '"status": "sent"' in done.stdout
    assert len(smtp_sink.messages()) == 1
