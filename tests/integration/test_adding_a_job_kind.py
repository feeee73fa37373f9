"""docs/adding-a-job-kind.md, followed: a new kind runs through the outbox, the worker, a
failure, the dead-letter queue and a redrive, with no change to Offload's own code."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from offload import kinds, queues
from offload.db import Pool
from offload.jobs import outbox
from offload.jobs.dead_letters import list_dead_letters, redrive
from offload.jobs.stats import job_kinds
from offload.kinds import JobKind
from offload.models import RedriveRequest
from offload.polling import wait_until
from offload.settings import Settings
from tests.harness import running_worker
from tests.kind_example import activities
from tests.kind_example.activities import PingActivities
from tests.kind_example.models import PingJob, PingResult
from tests.kind_example.workflows import PingWorkflow

# Step 3 of the tutorial: the declaration (in Offload, one entry of `KINDS` in offload/kinds.py).
PING = JobKind(
    workflow=PingWorkflow,
    activities=lambda settings, pool: {queues.DEFAULT: [PingActivities(settings, pool).ping_host]},
    workflow_id=lambda job: job.workflow_id,
    description="ping one host",
)


@pytest.fixture
def with_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinds, "KINDS", [*kinds.KINDS, PING])
    monkeypatch.setattr(activities, "UNREACHABLE", {"down.example"})


@pytest.fixture
async def ping_worker(
    with_ping: None, client: Client, settings: Settings, pool: Pool
) -> AsyncIterator[None]:
    # The settings' outbox grace is 2 s: rows the test writes are the relay's after that.
    async with running_worker(client, settings, pool):
        yield


async def test_a_new_kind_runs_from_the_outbox_fails_into_the_dlq_and_redrives(
    client: Client, settings: Settings, pool: Pool, ping_worker: None
) -> None:
    run = uuid.uuid4().hex[:8]
    up = PingJob(ping_id=f"up-{run}", host="up.example", retry=settings.retry)
    down = PingJob(ping_id=f"down-{run}", host="down.example", retry=settings.retry)
    # Step 4: queue it from a business transaction, through the outbox.
    async with pool.acquire() as conn, conn.transaction():
        for job in (up, down):
            await outbox.write(conn, PING.name, job.workflow_id, job)

    # The worker's relay starts both rows; the worker registered the kind's workflow and activity.
    async def result_of(job: PingJob) -> PingResult | None:
        handle = client.get_workflow_handle(job.workflow_id, result_type=PingResult)
        try:
            return await handle.result()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None  # the relay has not started it yet
            raise

    answer = await wait_until(lambda: result_of(up), within=60, what="the up ping")
    assert answer == PingResult(host="up.example", answer="pong from up.example")
    with pytest.raises(WorkflowFailureError):
        await wait_until(lambda: result_of(down), within=60, what="the down ping")

    async def dead_letter() -> dict[str, object] | None:
        rows = await list_dead_letters(pool, kind="ping")
        return rows[0] if rows else None

    entry = await wait_until(dead_letter, within=60, what="the dead-letter entry")
    assert (entry["workflow_id"], entry["status"]) == (down.workflow_id, "dead")
    assert entry["error_type"] == "HostUnreachable"
    assert PING.workflow_type in job_kinds()

    # The host is back: a redrive starts the job again under `<id>-redrive-1`, and it succeeds.
    activities.UNREACHABLE.clear()
    redrove = await redrive(client, settings, RedriveRequest(ids=[str(entry["id"])]))
    [redriven] = redrove.redriven
    assert redriven.workflow_id == f"{down.workflow_id}-redrive-1"
    answer = await client.get_workflow_handle(redriven.workflow_id, result_type=PingResult).result()
    assert answer.answer == "pong from down.example"
    [after] = await list_dead_letters(pool, kind="ping")
    assert after["status"] == "redriven"


async def test_the_outbox_refuses_a_kind_nobody_declared(pool: Pool) -> None:
    job = PingJob(ping_id="x", host="up.example")
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(kinds.UnknownKindError, match="unknown job kind 'ping'"):
            await outbox.write(conn, "ping", job.workflow_id, job)
