"""GET /jobs, GET /jobs/{id} and POST /jobs/{id}/cancel over HTTP, behind the bearer token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus

from api.app import create_app
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.email import enqueue_email
from offload.jobs.start import StartOptions
from offload.models import EmailJob
from offload.settings import Settings
from tests.api import eventually, serving
from tests.reports import seed_leads

TOKEN = "s3cret-jobs-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def http(settings: Settings, pool: Pool, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with (
        serving(create_app(own, pool=pool, client=client), own) as url,
        httpx.AsyncClient(base_url=url, timeout=30, headers=BEARER) as http,
    ):
        yield http


def fields(response: httpx.Response) -> list[str | None]:
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.usefixtures("worker")
async def test_jobs_are_listed_shown_and_cancelled_over_http(
    http: httpx.AsyncClient, client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    job = EmailJob(
        to="ada@example.com",
        template="lead-confirmation",
        data={"name": "Ada", "property": "1 Quay"},
        idempotency_key=str(uuid.uuid4()),
    )
    handle = await enqueue_email(
        client, settings, job, StartOptions(delay=timedelta(minutes=10), priority=1)
    )
    await seed_leads(pool, leads=10, agents=1)
    agent = int(await pool.fetchval("SELECT min(id) FROM agents"))
    report = {"user_id": agent, "start": "2026-01-01", "end": "2026-01-31", "delay_seconds": 600}
    queued = await http.post("/reports", json=report)
    assert queued.status_code == 202, queued.text

    refused = await http.get("/jobs", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    bad = await http.get("/jobs", params={"kind": "nope"})
    assert bad.status_code == 422 and fields(bad) == ["kind"]
    both = await http.post("/reports", json={**report, "at": "2030-01-01T00:00:00Z"})
    assert both.status_code == 422 and fields(both) == ["at"]

    async def listed() -> list[dict[str, object]]:
        found = await http.get("/jobs", params={"status": "scheduled"})
        assert found.status_code == 200, found.text
        jobs: list[dict[str, object]] = found.json()
        return jobs if len(jobs) == 2 else []

    jobs = {job["kind"]: job for job in await eventually(listed, seconds=10)}
    assert jobs["email"]["id"] == handle.id
    assert (jobs["email"]["priority"], jobs["report"]["priority"]) == (1, 3)
    assert jobs["report"]["id"] == queued.json()["workflow_id"]

    shown = await http.get(f"/jobs/{handle.id}")
    assert shown.status_code == 200
    assert shown.json()["status"] == "scheduled"
    assert shown.json()["url"].endswith(f"/workflows/{handle.id}/{shown.json()['run_id']}/history")
    assert (await http.get("/jobs/email-nope")).status_code == 404

    cancelled = await http.post(f"/jobs/{handle.id}/cancel", json={"reason": "test"})
    assert cancelled.status_code == 202, cancelled.text

    async def closed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    await eventually(closed, seconds=15)
    again = await http.post(f"/jobs/{handle.id}/cancel", json={"reason": "test"})
    assert again.status_code == 409 and "already canceled" in again.text
    assert smtp_sink.messages() == []
    await http.post(f"/jobs/{jobs['report']['id']}/cancel", json={})
