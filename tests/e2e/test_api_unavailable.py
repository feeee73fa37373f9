"""PostgreSQL or Temporal down under a running API: 503 in the JSON error shape, with
`Retry-After`, and the API recovers when it is back."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool, migrate
from offload.dev.stack import EmbeddedPostgres
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from tests.api import serving


def unavailable(response: httpx.Response, service: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    message = f"{service} is unavailable; retry later"
    body = response.json()
    assert (body["status"], body["detail"], body["success"]) == (503, message, False)
    assert body["errors"] == [{"field": None, "message": message}]


LEAD = {"name": "Ada Lovelace", "email": "ada@example.com", "property": "1 Analytical Row"}


async def test_a_database_outage_answers_503_json_with_retry_after_and_recovers(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    # A PostgreSQL of our own, so that it can stop under the API and start again.
    server = EmbeddedPostgres(tmp_path / "pg", port=free_port(), durable=False)
    await server.start()
    pool = await asyncpg.create_pool(server.dsn(), min_size=1, max_size=2)
    try:
        await migrate(pool)
        app = create_app(settings, pool=pool, client=client)
        async with serving(app, settings) as url, httpx.AsyncClient(base_url=url) as http:
            saved = await http.post("/leads", json=LEAD)
            assert saved.status_code == 201, saved.text

            server.stop()
            for _ in range(2):  # the pool's broken connection, then a refused new one
                unavailable(await http.post("/leads", json=LEAD), "the database")

            await server.start()
            again = await http.post("/leads", json=LEAD)
            assert again.status_code == 201, again.text
    finally:
        await pool.close()
        server.stop()


async def test_a_temporal_outage_answers_503_json_on_the_report_routes(
    settings: Settings, pool: Pool
) -> None:
    agent = await pool.fetchval(
        "INSERT INTO agents (name, email) VALUES ('A', 'a@example.com') RETURNING id"
    )
    # Nothing listens there: the lazy client cannot connect, as when Temporal is down.
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app = create_app(down, pool=pool, client=await connect(down, lazy=True))
    async with serving(app, down) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        report = {"user_id": agent, "start": "2026-06-01", "end": "2026-06-30"}
        unavailable(await http.post("/reports", json=report), "Temporal")
        unavailable(await http.get("/reports/some-report"), "Temporal")
        assert await pool.fetchval("SELECT count(*) FROM reports") == 0
