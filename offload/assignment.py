"""Which agent a new lead belongs to: the one its form names, else the next in turn.

The rule (docs/api.md, "Who gets a lead"): a lead that names `agent_id` goes to that agent;
one that names none goes to the agents in turn, round robin in id order, so the leads of the
web form are spread evenly and each appears in its agent's reports and digests. With no
agent at all, the lead is kept unassigned.
"""

from __future__ import annotations

from asyncpg.pool import PoolConnectionProxy

from offload.db import QUERIES


class UnknownAgentError(ValueError):
    """The lead names an agent that does not exist."""


async def assign_agent(conn: PoolConnectionProxy, requested: int | None) -> int | None:
    """The agent of a new lead, read in the transaction that inserts it.

    Raises:
        UnknownAgentError: `requested` names no agent.
    """
    if requested is not None:
        if not await conn.fetchval(QUERIES.agent_exists, requested):
            raise UnknownAgentError(f"no agent with id {requested}")
        return requested
    agent_id: int | None = await conn.fetchval(QUERIES.next_agent_in_turn)
    return agent_id
