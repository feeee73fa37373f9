"""Leads posted over the API belong to an agent, so they appear in that agent's report."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from offload.db import Pool
from tests.api import eventually
from tests.reports import read_csv


async def add_agents(pool: Pool, count: int) -> list[int]:
    return [
        int(
            await pool.fetchval(
                "INSERT INTO agents (name, email) VALUES ($1, $2) RETURNING id",
                f"Agent {i}",
                f"agent-{i}-{uuid.uuid4().hex[:6]}@example.com",
            )
        )
        for i in range(count)
    ]


@pytest.mark.usefixtures("worker")
async def test_a_posted_lead_goes_to_the_named_agent_or_the_next_in_turn_and_is_in_its_report(
    api_url: str, pool: Pool
) -> None:
    first, second = await add_agents(pool, 2)
    lead = {"name": "Ada Lovelace", "email": "ada@example.com", "property": "12 Harbour View"}
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        named = await http.post("/leads", json={**lead, "agent_id": second})
        unknown = await http.post("/leads", json={**lead, "agent_id": 999_999})
        in_turn = [
            await http.post("/leads", json={**lead, "property": f"{n} Mill Lane"}) for n in range(4)
        ]
        assert named.status_code == 201, named.text
        assert unknown.status_code == 422, unknown.text
        assert [e["field"] for e in unknown.json()["errors"]] == ["agent_id"]
        assert await pool.fetchval("SELECT count(*) FROM leads") == 5  # the 422 wrote nothing
        owners = [
            await pool.fetchval("SELECT agent_id FROM leads WHERE id = $1", r.json()["id"])
            for r in (named, *in_turn)
        ]
        # Named: that agent. Unnamed: round robin over the agents in id order.
        assert owners == [second, first, second, first, second]

        today = datetime.now(UTC).date().isoformat()
        body = {"report_id": uuid.uuid4().hex, "user_id": second, "start": today, "end": today}
        accepted = await http.post("/reports", json=body)
        assert accepted.status_code == 202, accepted.text

        async def done() -> dict[str, Any] | None:
            status = (await http.get(accepted.headers["Location"])).json()
            return status["result"] if status["status"] == "completed" else None

        result = await eventually(done, 60)
    assert result["total_leads"] == 3
    lines = read_csv(result["file"])
    assert sorted(line[1] for line in lines[1:-1]) == [
        "1 Mill Lane",
        "12 Harbour View",
        "3 Mill Lane",
    ]
