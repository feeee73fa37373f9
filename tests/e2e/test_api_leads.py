"""POST /leads against the API served by uvicorn, with the worker and its outbox relay."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from api.leads import LeadIn, confirmation_email
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.models import EmailJob
from offload.settings import Settings


@pytest.mark.usefixtures("worker")
async def test_a_posted_lead_gives_a_row_and_one_confirmation_email(
    api_url: str, pool: Pool, smtp_sink: SmtpSink
) -> None:
    lead = {"name": "Ada Lovelace", "email": "ada@example.com", "property": "12 Harbour View"}
    async with httpx.AsyncClient(base_url=api_url) as http:
        response = await http.post("/leads", json=lead)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    row = await pool.fetchrow("SELECT name, email FROM leads WHERE id = $1", body["id"])
    assert row is not None and row["email"] == "ada@example.com"
    for _ in range(300):
        if smtp_sink.messages():
            break
        await asyncio.sleep(0.1)
    [message] = smtp_sink.messages()
    assert message["To"] == "ada@example.com"
    assert "12 Harbour View" in message["Subject"]


async def test_bad_input_is_a_4xx_naming_each_field_and_writes_nothing(
    api_url: str, pool: Pool
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        invalid = await http.post("/leads", json={"email": "not-an-address"})
        wrong_type = await http.post(
            "/leads", content=b"name=Ada", headers={"content-type": "text/plain"}
        )
        too_big = await http.post("/leads", json={"name": "A" * 20_000, "email": "a@example.com"})
    assert invalid.status_code == 422
    fields = {error["field"] for error in invalid.json()["errors"]}
    assert fields == {"name", "email"}
    assert wrong_type.status_code == 415
    assert wrong_type.json()["errors"][0]["field"] == "Content-Type"
    assert too_big.status_code == 413
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize("key", [None, "outbox-row-test"])
async def test_the_outbox_row_holds_the_job_the_api_starts(
    api_url: str, pool: Pool, settings: Settings, key: str | None
) -> None:
    lead = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"}
    headers = {} if key is None else {"Idempotency-Key": f"{key}-{uuid.uuid4()}"}
    async with httpx.AsyncClient(base_url=api_url) as http:
        response = await http.post("/leads", json=lead, headers=headers)
    assert response.status_code == 201, response.text
    lead_id = response.json()["id"]
    expected = confirmation_email(settings, lead_id, LeadIn.model_validate(lead))
    assert expected.idempotency_key == f"{settings.task_queue_prefix}lead-{lead_id}-confirmation"
    row = await pool.fetchrow(
        "SELECT kind, payload::text AS payload FROM outbox WHERE workflow_id = $1",
        expected.workflow_id,
    )
    assert row is not None and row["kind"] == "email"
    # What the relay would start is what the API starts: one job, whoever starts it.
    assert EmailJob.model_validate_json(row["payload"]) == expected
