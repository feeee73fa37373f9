"""`offload dev` as a user runs it: the API and the worker in one process, stopped by SIGTERM.

The services come from the test (TEMPORAL_ADDRESS, DATABASE_URL and SMTP_HOST are set, so
`offload dev` starts none of its own), which keeps the fixed ports of a developer's own
`offload dev` out of the way.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.net import free_port
from offload.settings import Settings
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
