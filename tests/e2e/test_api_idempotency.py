"""`Idempotency-Key`: a retried POST /leads gets the first answer and creates nothing new."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from offload.db import Pool
from offload.dev.stack import SmtpSink
from tests.api import delivered

ADA = {"name": "Ada Lovelace", "email": "ada@example.com", "property": "12 Harbour View"}
GRACE = {"name": "Grace Hopper", "email": "grace@example.com", "property": "3 Dock Street"}


async def counts(pool: Pool) -> tuple[int, int]:
    leads = await pool.fetchval("SELECT count(*) FROM leads")
    outbox = await pool.fetchval("SELECT count(*) FROM outbox")
    return int(leads), int(outbox)


@pytest.mark.usefixtures("worker")
async def test_the_same_key_twice_and_twice_at_once_is_one_lead_one_email_one_answer(
    api_url: str, pool: Pool, smtp_sink: SmtpSink
) -> None:
    sequential, concurrent = str(uuid.uuid4()), str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        first = await http.post("/leads", json=ADA, headers={"Idempotency-Key": sequential})
        again = await http.post("/leads", json=ADA, headers={"Idempotency-Key": sequential})
        twins = await asyncio.gather(
            *(
                http.post("/leads", json=GRACE, headers={"Idempotency-Key": concurrent})
                for _ in range(2)
            )
        )

    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"

    assert [twin.status_code for twin in twins] == [201, 201], [twin.text for twin in twins]
    assert twins[0].json() == twins[1].json()
    assert twins[0].json()["id"] != first.json()["id"]
    replayed = sorted(twin.headers.get("Idempotent-Replayed", "") for twin in twins)
    assert replayed == ["", "true"]

    assert await counts(pool) == (2, 2)
    assert await delivered(smtp_sink, 2) == {"ada@example.com": 1, "grace@example.com": 1}


async def test_the_same_key_with_another_body_is_a_422_naming_the_key_and_writes_nothing(
    api_url: str, pool: Pool
) -> None:
    key = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        first = await http.post("/leads", json=ADA, headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text
        before = await counts(pool)
        other = await http.post("/leads", json=GRACE, headers={"Idempotency-Key": key})
    assert other.status_code == 422, other.text
    assert [error["field"] for error in other.json()["errors"]] == ["Idempotency-Key"]
    assert await counts(pool) == before == (1, 1)
