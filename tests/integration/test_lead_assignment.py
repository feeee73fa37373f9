"""A lead's agent is chosen by the INSERT that saves it (`offload/assignment.py`), against a
real PostgreSQL: one statement, the named agent or the next in turn."""

from __future__ import annotations

import pytest
from asyncpg.connection import LoggedQuery

from offload.assignment import UnknownAgentError, insert_assigned_lead
from offload.db import Pool


async def add_agent(pool: Pool, n: int) -> int:
    agent_id: int = await pool.fetchval(
        "INSERT INTO agents (name, email) VALUES ($1, $2) RETURNING id",
        f"Agent {n}",
        f"agent-{n}@example.com",
    )
    return agent_id


async def save(pool: Pool, agent_id: int | None, sent: list[str] | None = None) -> int:
    def log(record: LoggedQuery) -> None:
        if sent is not None:
            sent.append(record.query)

    async with pool.acquire() as conn:
        conn.add_query_logger(log)
        try:
            return await insert_assigned_lead(
                conn,
                name="Ada Lovelace",
                email="ada@example.com",
                phone="",
                property="12 Harbour View",
                source="website",
                agent_id=agent_id,
            )
        finally:
            conn.remove_query_logger(log)


async def agent_of(pool: Pool, lead_id: int) -> int | None:
    agent_id: int | None = await pool.fetchval("SELECT agent_id FROM leads WHERE id = $1", lead_id)
    return agent_id


async def test_the_lead_and_its_agent_in_turn_are_saved_by_one_statement(pool: Pool) -> None:
    first, second = await add_agent(pool, 1), await add_agent(pool, 2)
    sent: list[str] = []
    leads = [await save(pool, None, sent) for _ in range(3)]
    # One round trip per lead in the request's transaction: no query for the agent first.
    assert len(sent) == 3
    assert [await agent_of(pool, lead) for lead in leads] == [first, second, first]


async def test_a_lead_naming_its_agent_gets_it_and_takes_no_turn(pool: Pool) -> None:
    first, second = await add_agent(pool, 1), await add_agent(pool, 2)
    named = await save(pool, second)
    in_turn = await save(pool, None)
    assert await agent_of(pool, named) == second
    assert await agent_of(pool, in_turn) == first


async def test_a_lead_naming_no_agent_with_none_at_all_is_kept_unassigned(pool: Pool) -> None:
    lead = await save(pool, None)
    assert await agent_of(pool, lead) is None


async def test_an_unknown_agent_is_refused_and_takes_no_turn(pool: Pool) -> None:
    first = await add_agent(pool, 1)
    second = await add_agent(pool, 2)
    with pytest.raises(UnknownAgentError, match="no agent with id 999999"):
        await save(pool, 999_999)
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
    assert await agent_of(pool, await save(pool, None)) == first
    assert await agent_of(pool, await save(pool, None)) == second
