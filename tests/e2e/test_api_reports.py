"""POST /reports behind the bearer token, GET /reports/{id}, /healthz and /metrics over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.settings import Settings
from tests.api import eventually, metric_samples, serving
from tests.reports import seed_leads, sql_totals

TOKEN = "s3cret-report-token"
START, END = date(2025, 9, 1), date(2026, 6, 30)


@pytest.fixture
async def http(settings: Settings, pool: Pool, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with (
        serving(create_app(own, pool=pool, client=client), own) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield http


def fields(response: httpx.Response) -> list[str | None]:
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.usefixtures("worker")
async def test_post_reports_checks_the_token_and_the_fields_then_serves_the_result(
    http: httpx.AsyncClient, pool: Pool
) -> None:
    await seed_leads(pool, leads=400, agents=1)
    agent = int(await pool.fetchval("SELECT min(id) FROM agents"))
    report_id = uuid.uuid4().hex
    body: dict[str, Any] = {
        "report_id": report_id,
        "user_id": agent,
        "start": START.isoformat(),
        "end": END.isoformat(),
    }
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    missing = await http.post("/reports", json=body)
    wrong = await http.post("/reports", json=body, headers={"Authorization": "Bearer nope"})
    for refused in (missing, wrong):
        assert refused.status_code == 401, refused.text
        assert fields(refused) == ["Authorization"]
        assert refused.headers["WWW-Authenticate"] == "Bearer"

    unknown_agent = await http.post("/reports", json={**body, "user_id": 999_999}, headers=bearer)
    assert unknown_agent.status_code == 422, unknown_agent.text
    assert fields(unknown_agent) == ["user_id"]
    backwards = {**body, "start": END.isoformat(), "end": START.isoformat()}
    reversed_range = await http.post("/reports", json=backwards, headers=bearer)
    assert reversed_range.status_code == 422, reversed_range.text
    assert fields(reversed_range) == ["end"]
    assert (await http.get(f"/reports/{report_id}")).status_code == 401

    accepted = await http.post("/reports", json=body, headers=bearer)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]
    assert location == f"/reports/{report_id}" == accepted.json()["status_url"]

    first = await http.get(location, headers=bearer)
    assert first.status_code == 200, first.text
    assert first.json()["status"] in ("running", "completed")

    async def done() -> dict[str, Any] | None:
        status = (await http.get(location, headers=bearer)).json()
        return status if status["status"] == "completed" and status["result"] else None

    finished = await eventually(done, 60)
    result = finished["result"]
    assert result["report_id"] == report_id
    totals = await sql_totals(pool, agent, START, END)
    assert [str(result["total_leads"]), result["average_score"]] == totals[2:4]


async def test_unknown_report_is_404_and_healthz_and_metrics_answer(
    http: httpx.AsyncClient,
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    unknown = await http.get("/reports/no-such-report", headers=bearer)
    assert unknown.status_code == 404, unknown.text
    assert fields(unknown) == ["report_id"]

    health = await http.get("/healthz")
    assert health.status_code == 200, health.text
    assert health.json() == {"ok": True, "database": "ok", "temporal": "ok"}

    metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    timed = metric_samples(metrics.text, "offload_api_request_seconds_count")
    assert ({"route": "/healthz", "method": "GET", "status": "200"}, 1.0) in timed
    assert ({"route": "/reports/{report_id}", "method": "GET", "status": "404"}, 1.0) in timed
