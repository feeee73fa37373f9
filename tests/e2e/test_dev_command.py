"""`offload dev` as a user runs it: the API and the worker in one process, stopped by SIGTERM
or Ctrl-C.

The services come from the test (DATABASE_URL and SMTP_HOST are set, so `offload dev` starts
none of its own; TEMPORAL_ADDRESS too, but for the Ctrl-C test, whose `offload dev` runs its
own Temporal on free ports), which keeps the fixed ports of a developer's own `offload dev`
out of the way.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from offload.db import Pool
from offload.dev.stack import SmtpSink, TemporalDevServer
from offload.net import free_port, port_is_free
from offload.settings import Settings
from tests.api import eventually
from tests.harness import running_dev


async def test_offload_dev_serves_the_api_beside_the_worker_and_stops_on_sigterm(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"api_port": free_port(), "metrics_address": ""})
    log = tmp_path / "dev.log"
    async with running_dev(settings, log) as dev:
        deadline = time.monotonic() + 60
        assert "\nready: " in log.read_text()
        url = f"http://127.0.0.1:{settings.api_port}"
        assert f"api       {url}" in log.read_text()
        lead = {"name": "Ada Lovelace", "email": "ada@example.com", "property": "12 Harbour View"}
        async with httpx.AsyncClient(base_url=url) as http:
            health = await http.get("/healthz")
            posted = await http.post("/leads", json=lead)
        assert health.json() == {"ok": True, "database": "ok", "temporal": "ok"}, health.text
        assert posted.status_code == 201, posted.text
        while not smtp_sink.messages():
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        [message] = smtp_sink.messages()
        assert message["To"] == "ada@example.com"
        # Its outbox row is marked started (by the API after its response, else the relay).
        while await pool.fetchval("SELECT count(*) FROM outbox WHERE started_at IS NULL"):
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
    assert dev.returncode == 0, log.read_text()
    assert "stopped" in log.read_text()
    # The address of the lead must not reach the log.
    assert "ada@example.com" not in log.read_text()


async def test_ctrl_c_lets_the_worker_drain_before_the_temporal_of_offload_dev_stops(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # TEMPORAL_ADDRESS unset: `offload dev` runs its own dev server (on a free port).
    temporal_port = free_port()
    env = settings.to_env() | {
        "OFFLOAD_DEV_TEMPORAL_PORT": str(temporal_port),
        "TEMPORAL_UI_URL": f"http://127.0.0.1:{free_port()}",
        "OFFLOAD_API_PORT": str(free_port()),
        "OFFLOAD_METRICS_ADDRESS": "",
    }
    del env["TEMPORAL_ADDRESS"]
    own = Settings(_env_file=None, **env)  # type: ignore[arg-type]
    # The lead's email is on the wire when Ctrl-C comes, and for 3 s after it: longer than
    # the dev server takes to exit on a SIGINT of its own (about 1.5 s).
    smtp_sink.data_delay_seconds = 3
    log = tmp_path / "dev.log"
    lead = {"name": "Ada Lovelace", "email": "ada@example.com", "property": "12 Harbour View"}
    async with running_dev(own, log, ctrl_c=True) as dev:
        assert f"temporal  127.0.0.1:{temporal_port}" in log.read_text()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{own.api_port}") as http:
            posted = await http.post("/leads", json=lead)
        assert posted.status_code == 201, posted.text

        async def on_the_wire() -> bool:
            return smtp_sink.data_begun == 1

        await eventually(on_the_wire, 30, "the email on the wire")
    output = log.read_text()
    assert dev.returncode == 0, output
    assert "shutting down" in output and "stopped" in output, output
    assert len(smtp_sink.messages()) == 1
    assert port_is_free(temporal_port), "offload dev left its Temporal dev server running"
    # The server, on its file again: the job's end reached it before it stopped.
    server = TemporalDevServer(
        port=free_port(), ui_port=None, db_file=own.data_dir / "temporal.sqlite"
    )
    await server.start()
    try:
        client = await Client.connect(server.address)
        statuses = {w.id: w.status async for w in client.list_workflows()}
    finally:
        await server.stop()
    assert statuses, output
    assert set(statuses.values()) == {WorkflowExecutionStatus.COMPLETED}, statuses
