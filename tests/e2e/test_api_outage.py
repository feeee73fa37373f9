"""Temporal down while leads are posted: the API still answers at once, and nothing is lost."""

from __future__ import annotations

import statistics
from pathlib import Path

import httpx

from api.app import create_app
from offload.db import Pool
from offload.dev.stack import SmtpSink, TemporalDevServer
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from tests.api import delivered, eventually, serving, timed_post
from tests.harness import running_worker

LEADS_WHILE_DOWN = 6


def lead(n: int) -> dict[str, str]:
    return {"name": f"Lead {n}", "email": f"lead{n}@example.com", "property": f"{n} Harbour View"}


async def test_leads_posted_while_temporal_is_down_get_201_and_one_email_each_once_it_is_back(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    # A server of our own, on a SQLite file, so that it can stop and start again on it.
    server = TemporalDevServer(port=free_port(), ui_port=None, db_file=tmp_path / "t.sqlite")
    await server.start()
    own = settings.model_copy(
        update={
            "temporal_address": server.address,
            "outbox_grace_seconds": 0.5,
            "outbox_poll_seconds": 0.2,
        }
    )
    try:
        worker_client = await connect(own)
        api_client = await connect(own, lazy=True)
        app = create_app(own, pool=pool, client=api_client)
        async with (
            running_worker(worker_client, own, pool),
            serving(app, own) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            healthy = await http.get("/healthz")
            assert healthy.status_code == 200, healthy.text
            assert healthy.json() == {"ok": True, "database": "ok", "temporal": "ok"}

            await server.stop()
            down = await http.get("/healthz")
            assert down.status_code == 503
            assert down.json()["database"] == "ok"
            assert down.json()["temporal"] != "ok"
            assert not down.json()["ok"]

            latencies = []
            for n in range(LEADS_WHILE_DOWN):
                response, seconds = await timed_post(http, "/leads", json=lead(n))
                assert response.status_code == 201, response.text
                latencies.append(seconds)
            # One start may wait out its timeout; the others leave it to the relay at once.
            assert max(latencies) < own.api_start_timeout_seconds + 1.0, latencies
            assert statistics.median(latencies) < 0.5, latencies
            assert await pool.fetchval("SELECT count(*) FROM leads") == LEADS_WHILE_DOWN
            pending = "SELECT count(*) FROM outbox WHERE started_at IS NULL"
            assert await pool.fetchval(pending) == LEADS_WHILE_DOWN
            assert smtp_sink.messages() == []

            await server.start()

            async def healthy_again() -> bool:
                return (await http.get("/healthz")).status_code == 200

            await eventually(healthy_again, 30)
            by_recipient = await delivered(smtp_sink, LEADS_WHILE_DOWN)
            assert by_recipient == {f"lead{n}@example.com": 1 for n in range(LEADS_WHILE_DOWN)}

            async def all_started() -> bool:
                return await pool.fetchval(pending) == 0

            await eventually(all_started, 10)
    finally:
        await server.stop()
