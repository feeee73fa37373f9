"""POST /reports refuses what cannot run before anything starts: days out of range, a reused id."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from offload.db import Pool
from tests.reports import seed_leads


def fields(response: httpx.Response) -> list[str | None]:
    return [error["field"] for error in response.json()["errors"]]


async def test_a_day_past_the_last_reportable_one_is_422_and_starts_nothing(
    api_url: str, pool: Pool, client: Client
) -> None:
    await seed_leads(pool, leads=10, agents=1)
    report_id = uuid.uuid4().hex
    body = {"report_id": report_id, "user_id": 1, "start": "9999-12-31", "end": "9999-12-31"}
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        refused = await http.post("/reports", json=body)
    assert refused.status_code == 422, refused.text
    assert fields(refused) == ["end"]
    assert "9999-12-30" in refused.text
    with pytest.raises(RPCError):
        await client.get_workflow_handle(f"report-{report_id}").describe()
    assert await pool.fetchval("SELECT count(*) FROM reports") == 0


async def test_a_report_id_reused_with_other_parameters_is_409_naming_the_existing_ones(
    api_url: str, pool: Pool, client: Client
) -> None:
    await seed_leads(pool, leads=10, agents=2)
    report_id = uuid.uuid4().hex
    first: dict[str, Any] = {
        "report_id": report_id,
        "user_id": 1,
        "start": "2026-01-01",
        "end": "2026-01-31",
    }
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        accepted = await http.post("/reports", json=first)
        same = await http.post("/reports", json=first)
        other_agent = await http.post("/reports", json={**first, "user_id": 2})
        other_days = await http.post("/reports", json={**first, "end": "2026-02-28"})
    assert (accepted.status_code, same.status_code) == (202, 202), (accepted.text, same.text)
    assert same.json() == accepted.json()
    for refused in (other_agent, other_days):
        assert refused.status_code == 409, refused.text
        assert fields(refused) == ["report_id"]
        [error] = refused.json()["errors"]
        assert "user_id 1, start 2026-01-01, end 2026-01-31" in error["message"]
    row = await pool.fetchrow(
        "SELECT user_id, end_day FROM reports WHERE report_id = $1", report_id
    )
    assert row is not None and (row["user_id"], row["end_day"].isoformat()) == (1, "2026-01-31")
    await client.get_workflow_handle(f"report-{report_id}").terminate("test over")
