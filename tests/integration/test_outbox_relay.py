"""The outbox relay's batch: its rows start together, and one that cannot start holds none back."""

from __future__ import annotations

import pydantic
import pytest
from temporalio.client import Client

from offload.db import Pool
from offload.jobs.outbox import OutboxRelay, write
from offload.models import EmailJob
from offload.settings import Settings


def email_job(settings: Settings, n: int) -> EmailJob:
    return EmailJob(
        to=f"lead{n}@example.com",
        template="lead-confirmation",
        data={"name": "Ada", "property": "12 Harbour View"},
        idempotency_key=f"relay-batch-{n}",
        retry=settings.retry,
    )


async def test_one_row_that_cannot_start_holds_back_none_of_its_batch(
    client: Client, settings: Settings, pool: Pool
) -> None:
    # First in the batch: a row that no start can take (written by an older deployment,
    # say), then five good ones.
    await pool.execute(
        "INSERT INTO outbox (kind, workflow_id, payload) VALUES ('email', 'email-bad', $1)",
        '{"to": 1}',
    )
    jobs = [email_job(settings, n) for n in range(5)]
    async with pool.acquire() as conn, conn.transaction():
        for job in jobs:
            await write(conn, "email", job.workflow_id, job)
    relay = OutboxRelay(client, settings.model_copy(update={"outbox_grace_seconds": 0}), pool)

    with pytest.raises(pydantic.ValidationError):
        await relay.relay_once()

    started = await pool.fetch(
        "SELECT workflow_id FROM outbox WHERE started_at IS NOT NULL ORDER BY id"
    )
    assert [r["workflow_id"] for r in started] == [job.workflow_id for job in jobs]
    for job in jobs:
        await client.get_workflow_handle(job.workflow_id).describe()
    bad = await pool.fetchrow(
        "SELECT started_at, attempts, last_error FROM outbox WHERE workflow_id = 'email-bad'"
    )
    assert bad["started_at"] is None
    assert bad["attempts"] == 1
    assert bad["last_error"].startswith("ValidationError")
    assert relay.started == 5


async def test_a_second_pass_starts_nothing_again(
    client: Client, settings: Settings, pool: Pool
) -> None:
    jobs = [email_job(settings, n) for n in range(3)]
    async with pool.acquire() as conn, conn.transaction():
        for job in jobs:
            await write(conn, "email", job.workflow_id, job)
    relay = OutboxRelay(client, settings.model_copy(update={"outbox_grace_seconds": 0}), pool)
    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 0
    attempts = await pool.fetch("SELECT attempts FROM outbox ORDER BY id")
    assert [r["attempts"] for r in attempts] == [1, 1, 1]
