"""`offload api` as its own process: killed right after a commit, a taken port, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from offload.db import Pool
from offload.dev.stack import SmtpSink, find_binary
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


async def exit_code(process: subprocess.Popen[bytes], seconds: float = 30) -> int:
    return await asyncio.to_thread(process.wait, seconds)


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
