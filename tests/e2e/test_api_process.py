"""`offload api` as its own process: its own workflow worker, killed right after a commit, a
taken port, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from offload import queues
from offload.db import Pool
from offload.dev.stack import SmtpSink, TemporalDevServer, find_binary
from offload.net import free_port
from offload.settings import Settings
from tests.api import delivered, eventually
from tests.harness import child_process, run_offload, running_worker


async def started_api(settings: Settings, *command: str) -> tuple[subprocess.Popen[bytes], str]:
    """`offload api` (or `command`) on a free port, once it answers."""
    port = free_port()
    own = settings.model_copy(update={"api_port": port})
    command = command or (find_binary("offload", "offload"), "api")
    process = child_process(own, list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        assert process.poll() is None, process.communicate()
        try:
            async with httpx.AsyncClient(base_url=url) as http:
                return (await http.get("/healthz")).status_code in (200, 503)
        except httpx.TransportError:
            return False

    try:
        await eventually(answers, 60)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, url


async def workflow_queue_polled(client: Client, settings: Settings) -> bool:
    """Whether a worker polls the workflow queue: what `temporal task-queue describe` shows."""
    found = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=queues.named(queues.WORKFLOWS, settings.task_queue_prefix)),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(found.pollers) > 0


async def exit_code(process: subprocess.Popen[bytes], seconds: float = 30) -> int:
    return await asyncio.to_thread(process.wait, seconds)


def started_eagerly(history: WorkflowHistory) -> bool:
    """Whether the first workflow task came in the start's answer, not from a poll of the queue.

    An eager start records the task started with the workflow, in the same write; a task
    that a worker polls is started later, and the server records the history size the
    poller got with it.
    """
    scheduled, started = history.events[1], history.events[2]
    assert scheduled.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    waited_ms = (started.event_time.ToNanoseconds() - scheduled.event_time.ToNanoseconds()) / 1e6
    polled = started.workflow_task_started_event_attributes.history_size_bytes > 0
    return waited_ms < 1 and not polled


async def post_lead(url: str, email: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post("/leads", json={"name": "Ada", "email": email})
    assert response.status_code == 201, response.text
    lead_id: int = response.json()["id"]
    return lead_id


async def stopped(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then a clean exit (the worker drained)."""
    process.send_signal(signal.SIGTERM)
    assert await exit_code(process) == 0, process.communicate()
    process.communicate()


async def test_offload_api_alone_delivers_a_lead_from_its_own_eager_start(
    settings: Settings, pool: Pool, client: Client, smtp_sink: SmtpSink
) -> None:
    # No worker runs anywhere: the API's own workflow worker runs the job. The API answers
    # before its worker has connected; a lead taken meanwhile is started without asking to
    # be eager (and the worker runs it from the queue once it polls), so wait for the poll.
    process, url = await started_api(settings)
    try:
        await eventually(lambda: workflow_queue_polled(client, settings), 30)
        lead_id = await post_lead(url, "ada@example.com")
        assert await delivered(smtp_sink, 1) == {"ada@example.com": 1}
    finally:
        await stopped(process)
    workflow_id = await pool.fetchval("SELECT workflow_id FROM outbox")
    assert str(lead_id) in workflow_id
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    assert started_eagerly(history)
    assert await pool.fetchval("SELECT started_at IS NOT NULL FROM outbox") is True


async def test_offload_api_without_its_worker_leaves_the_job_to_the_workers(
    settings: Settings, pool: Pool, client: Client, smtp_sink: SmtpSink
) -> None:
    process, url = await started_api(settings.model_copy(update={"api_worker": False}))
    try:
        await post_lead(url, "ada@example.com")
        # Saved, and waiting in the outbox: the API starts nothing, and no worker runs.
        await asyncio.sleep(1)
        workflow_id = await pool.fetchval("SELECT workflow_id FROM outbox WHERE started_at IS NULL")
        assert workflow_id is not None
        with pytest.raises(RPCError) as not_found:
            await client.get_workflow_handle(workflow_id).describe()
        assert not_found.value.status == RPCStatusCode.NOT_FOUND
        async with running_worker(client, settings, pool):
            assert await delivered(smtp_sink, 1) == {"ada@example.com": 1}
    finally:
        await stopped(process)
    assert await pool.fetchval("SELECT started_at IS NOT NULL FROM outbox") is True


async def test_offload_api_without_its_worker_wakes_a_workers_relay_at_the_commit(
    settings: Settings, pool: Pool, client: Client, smtp_sink: SmtpSink
) -> None:
    # The relay polls every 30 s: only the lead's notification can start its job sooner.
    relay_settings = settings.model_copy(update={"outbox_poll_seconds": 30.0})
    async with running_worker(client, relay_settings, pool):
        await eventually(lambda: relay_listening(pool), 10)
        process, url = await started_api(settings.model_copy(update={"api_worker": False}))
        try:
            await post_lead(url, "ada@example.com")
            assert await delivered(smtp_sink, 1, 10) == {"ada@example.com": 1}
        finally:
            await stopped(process)
    workflow_id = await pool.fetchval("SELECT workflow_id FROM outbox WHERE started_at IS NOT NULL")
    # The relay's process runs the job's worker too: its start was eager.
    assert started_eagerly(await client.get_workflow_handle(workflow_id).fetch_history())


async def relay_listening(pool: Pool) -> bool:
    """Whether a relay listens for the outbox's notifications (pg_stat_activity)."""
    found = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'LISTEN %offload_outbox%'"
    )
    return bool(found)


async def test_offload_api_opens_its_whole_pool_before_it_takes_requests(
    settings: Settings, pool: Pool
) -> None:
    # A connection opened under load costs the request that waits for it a connect.
    connections = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    before = await pool.fetchval(connections)
    own = settings.model_copy(update={"api_worker": False, "api_pool_size": 5})
    process, _ = await started_api(own)
    try:
        assert await pool.fetchval(connections) - before == 5
    finally:
        await stopped(process)


async def test_offload_api_started_while_temporal_is_down_hosts_its_worker_once_it_is_up(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    agent = await pool.fetchval(
        "INSERT INTO agents (name, email) VALUES ('A', 'a@example.com') RETURNING id"
    )
    port = free_port()
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    process, url = await started_api(down)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            health = await http.get("/healthz")
            assert health.status_code == 503, health.text
            assert health.json()["temporal"].startswith("unavailable")
            report = {"user_id": agent, "start": "2026-06-01", "end": "2026-06-30"}
            refused = await http.post("/reports", json=report)
            assert refused.status_code == 503, refused.text
        # Saved while Temporal is down; its job waits in the outbox for the relay.
        await post_lead(url, "first@example.com")

        server = TemporalDevServer(port=port, ui_port=None)
        await server.start()
        try:
            temporal = await Client.connect(server.address)
            # The API's worker polls the queue once it has connected.
            await eventually(lambda: workflow_queue_polled(temporal, settings), 30)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                assert (await http.get("/healthz")).status_code == 200
            lead_id = await post_lead(url, "second@example.com")
            assert await delivered(smtp_sink, 1) == {"second@example.com": 1}
            workflow_id = await pool.fetchval(
                "SELECT workflow_id FROM outbox WHERE workflow_id LIKE $1", f"%lead-{lead_id}-%"
            )
            history = await temporal.get_workflow_handle(workflow_id).fetch_history()
            assert started_eagerly(history)
        finally:
            await stopped(process)
            await server.stop()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_a_lead_committed_by_an_api_killed_before_the_start_is_started_by_the_relay(
    settings: Settings, pool: Pool, client: Client, smtp_sink: SmtpSink
) -> None:
    process, url = await started_api(settings, sys.executable, "-m", "tests.crashing_api")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            with pytest.raises(httpx.TransportError):
                await http.post("/leads", json={"name": "Ada", "email": "ada@example.com"})
        assert await exit_code(process) != 0
    finally:
        process.kill()
        process.communicate()

    lead_id = await pool.fetchval("SELECT id FROM leads WHERE email = 'ada@example.com'")
    assert lead_id is not None, "the lead was not committed"
    outbox = await pool.fetchrow("SELECT workflow_id, started_at FROM outbox")
    assert outbox is not None and outbox["started_at"] is None
    assert str(lead_id) in outbox["workflow_id"]
    with pytest.raises(RPCError) as not_started:
        await client.get_workflow_handle(outbox["workflow_id"]).describe()
    assert not_started.value.status == RPCStatusCode.NOT_FOUND

    relaying = settings.model_copy(update={"outbox_grace_seconds": 0.5, "outbox_poll_seconds": 0.2})
    async with running_worker(client, relaying, pool):
        assert await delivered(smtp_sink, 1) == {"ada@example.com": 1}

        async def marked() -> bool:
            return await pool.fetchval("SELECT started_at IS NOT NULL FROM outbox") is True

        await eventually(marked, 10)


async def test_offload_api_names_a_taken_port_and_leaves_cleanly_on_sigterm(
    settings: Settings,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = await asyncio.to_thread(
            run_offload, settings.model_copy(update={"api_port": port}), "api"
        )
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "OFFLOAD_API_PORT" in refused.stderr
    assert str(port) in refused.stderr

    process, _ = await started_api(settings)
    process.send_signal(signal.SIGTERM)
    assert await exit_code(process) == 0
    out, _ = process.communicate()
    assert b"api stopped" in out
