"""PostgreSQL down under a running API: 503 in the JSON error shape, with `Retry-After`."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
from temporalio.client import Client

from api.app import create_app
from offload.db import migrate
from offload.devstack import EmbeddedPostgres, free_port
from offload.settings import Settings
from tests.api import serving

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
                down = await http.post("/leads", json=LEAD)
                assert down.status_code == 503, down.text
                assert down.headers["content-type"] == "application/json"
                assert int(down.headers["Retry-After"]) > 0
                assert down.json() == {
                    "success": False,
                    "errors": [
                        {"field": None, "message": "the database is unavailable; retry later"}
                    ],
                }

            await server.start()
            again = await http.post("/leads", json=LEAD)
            assert again.status_code == 201, again.text
    finally:
        await pool.close()
        server.stop()
