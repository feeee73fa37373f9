"""The failure paths of real `offload worker` and `offload api` processes, logging at DEBUG:
no address and no name of a lead or agent in any line they write."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.email import enqueue_email
from offload.models import EmailJob
from offload.net import free_port
from offload.settings import Settings
from tests.api import eventually
from tests.harness import offload_process

# Every one unusual enough that finding it in a log can only mean it leaked.
REFUSED = ("Zebulon Quark", "zebulon.quark@example.com")
DEFERRED = ("Wanda Xylophone", "wanda.xylophone@example.com")
INVALID = ("Quentin Vole", "quentin..vole@example.com")
AGENT = ("Ophelia Marsh", "ophelia.marsh@example.com")
PEOPLE = (REFUSED, DEFERRED, INVALID, AGENT)


def forbidden_words() -> set[str]:
    words = set()
    for name, address in PEOPLE:
        words |= {address.lower(), address.split("@")[0].lower()}
        words |= {part.lower() for part in name.split()}
    return words


async def wait_failed(client: Client, workflow_id: str) -> None:
    async def failed() -> bool:
        description = await client.get_workflow_handle(workflow_id).describe()
        return description.status == WorkflowExecutionStatus.FAILED

    await eventually(failed, 90)


async def test_failed_jobs_log_their_error_types_and_ids_but_no_address_or_name(
    settings: Settings, pool: Pool, client: Client, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    own = settings.model_copy(
        update={
            "retry_maximum_attempts": 3,
            "api_port": free_port(),
            "metrics_address": "",
            "outbox_grace_seconds": 0.5,
        }
    )
    for _, address in (REFUSED, AGENT):
        smtp_sink.rules.set(address, f"550 5.1.1 <{address}>: Recipient address rejected")
    smtp_sink.rules.set(DEFERRED[1], f"451 4.2.0 <{DEFERRED[1]}>: mailbox busy, try later")
    agent_id = await pool.fetchval(
        "INSERT INTO agents (name, email) VALUES ($1, $2) RETURNING id", *AGENT
    )

    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "api")}
    processes = []
    for name, log in logs.items():
        with log.open("wb") as out:
            processes.append(
                offload_process(own, "--verbose", name, stdout=out, stderr=subprocess.STDOUT)
            )
    try:
        url = f"http://127.0.0.1:{own.api_port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def answers() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(answers, 60)
            failing = []
            for name, address in (REFUSED, DEFERRED):
                lead = {"name": name, "email": address, "property": "7 Quarry Lane"}
                response = await http.post("/leads", json=lead)
                assert response.status_code == 201, response.text
                failing.append(
                    f"email-{own.task_queue_prefix}lead-{response.json()['id']}-confirmation"
                )
            report = {"user_id": agent_id, "start": "2026-06-01", "end": "2026-06-30"}
            response = await http.post("/reports", json=report)
            assert response.status_code == 202, response.text
            failing.append(response.json()["workflow_id"])
        invalid = EmailJob(
            to=INVALID[1],
            template="lead-confirmation",
            data={"name": INVALID[0], "property": "7 Quarry Lane"},
            idempotency_key=f"invalid-{uuid.uuid4().hex}",
            retry=own.retry,
        )
        failing.append((await enqueue_email(client, own, invalid)).id)

        await asyncio.gather(*(wait_failed(client, workflow_id) for workflow_id in failing))
        # The dead letters are recorded after the failures: let those lines be written too.
        await eventually(lambda: pool.fetchval("SELECT count(*) >= 4 FROM dead_letters"), 30)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.to_thread(process.wait, 60)

    text = "\n".join(log.read_text(errors="replace") for log in logs.values())
    lines = text.lower().splitlines()
    leaks = [line for line in lines if any(word in line for word in forbidden_words())]
    assert not leaks, "\n".join(leaks[:20])
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text.replace("@offload.localhost", ""))
    # What an operator needs is there: each failed attempt's error type and job, in the log
    # of the process that ran it (the API's own worker makes a lead's first attempt).
    for error_type in ("SmtpPermanentError", "SmtpTransientError", "InvalidEmailAddress"):
        assert error_type in text, error_type
    for workflow_id in failing:
        assert workflow_id in text, workflow_id
