"""The outbox relay's batch: its rows start together, and one that cannot start holds none back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pydantic
import pytest
from temporalio.client import Client

from offload.db import Pool
from offload.jobs.outbox import CHANNEL, OutboxRelay, write
from offload.models import EmailJob
from offload.settings import Settings
from tests.api import eventually


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


async def listener_pid(pool: Pool) -> int | None:
    """The backend of the relay's listening connection, once it listens."""
    pid: int | None = await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'LISTEN %offload_outbox%'"
    )
    return pid


async def write_and_wake(pool: Pool, job: EmailJob) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await write(conn, "email", job.workflow_id, job, wake_relay=True)


async def started(pool: Pool, workflow_id: str) -> bool:
    found: bool = await pool.fetchval(
        "SELECT started_at IS NOT NULL FROM outbox WHERE workflow_id = $1", workflow_id
    )
    return found


@contextlib.asynccontextmanager
async def listening_relay(client: Client, settings: Settings, pool: Pool) -> AsyncIterator[int]:
    """A running relay that polls every 30 s (only a notification starts a row sooner),
    once it listens; the block gets its listening backend's pid."""
    relay = OutboxRelay(client, settings.model_copy(update={"outbox_poll_seconds": 30.0}), pool)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield await eventually(lambda: listener_pid(pool), 10)
    finally:
        stop.set()
        await task


async def test_a_woken_relay_starts_a_row_at_once_not_at_its_next_poll(
    client: Client, settings: Settings, pool: Pool
) -> None:
    # The usual grace, and no poll for 30 s: only the notification can start it sooner.
    async with listening_relay(client, settings, pool):
        job = email_job(settings, 1)
        await write_and_wake(pool, job)
        await eventually(lambda: started(pool, job.workflow_id), 5)
    await client.get_workflow_handle(job.workflow_id).describe()


async def test_a_relay_whose_connection_was_lost_listens_again_and_misses_nothing(
    client: Client, settings: Settings, pool: Pool
) -> None:
    async with listening_relay(client, settings, pool) as first:
        # Written, and its notification sent, while nobody listens.
        await pool.execute("SELECT pg_terminate_backend($1)", first)
        missed = email_job(settings, 1)
        await write_and_wake(pool, missed)
        second = await eventually(lambda: listener_pid(pool), 10)
        assert second != first
        await eventually(lambda: started(pool, missed.workflow_id), 5)
        later = email_job(settings, 2)
        await write_and_wake(pool, later)
        await eventually(lambda: started(pool, later.workflow_id), 5)


async def test_a_row_written_without_waking_waits_for_the_poll(
    client: Client, settings: Settings, pool: Pool
) -> None:
    # The API that starts its own jobs wakes nobody: the relay leaves its rows their grace.
    async with listening_relay(client, settings, pool):
        job = email_job(settings, 1)
        async with pool.acquire() as conn, conn.transaction():
            await write(conn, "email", job.workflow_id, job)
        await asyncio.sleep(2)
        assert not await started(pool, job.workflow_id)


@contextlib.asynccontextmanager
async def notifications(pool: Pool) -> AsyncIterator[list[str]]:
    """The channels of the notifications on `CHANNEL` while the block runs, as they come."""
    woken: list[str] = []

    def heard(_conn: object, _pid: int, channel: str, _payload: object) -> None:
        woken.append(channel)

    async with pool.acquire() as listener:
        await listener.add_listener(CHANNEL, heard)
        try:
            yield woken
        finally:
            await listener.remove_listener(CHANNEL, heard)


async def test_a_waking_write_that_rolls_back_queues_nothing_and_wakes_nobody(
    settings: Settings, pool: Pool
) -> None:
    async with notifications(pool) as woken:
        job = email_job(settings, 1)
        with pytest.raises(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                await write(conn, "email", job.workflow_id, job, wake_relay=True)
                raise RuntimeError("the lead's insert failed")
        # Notifications come in commit order: once this write's is here, the first's would be.
        await write_and_wake(pool, email_job(settings, 2))
        await eventually(lambda: asyncio.sleep(0, result=woken), 5)
    assert woken == [CHANNEL]
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1


async def test_writing_a_queued_job_again_keeps_its_row_and_still_wakes(
    settings: Settings, pool: Pool
) -> None:
    job = email_job(settings, 1)
    async with notifications(pool) as woken:
        first = await write_and_wake(pool, job)
        again = await write_and_wake(pool, job)
        await eventually(lambda: asyncio.sleep(0, result=len(woken) == 2), 5)
    assert again == first
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
