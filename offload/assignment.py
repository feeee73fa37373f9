"""Which agent a new lead belongs to: the one its form names, else the next in turn.

The rule (docs/api.md, "Who gets a lead"): a lead that names `agent_id` goes to that agent;
one that names none goes to the agents in turn, round robin in id order, so the leads of the
web form are spread evenly and each appears in its agent's reports and digests. With no
agent at all, the lead is kept unassigned.

The agent is chosen by the INSERT itself (`insert_assigned_lead`): no round trip of its own
in the request's transaction.
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from offload.db import QUERIES

# The foreign key of `leads.agent_id` (migration 0002).
AGENT_FOREIGN_KEY = "leads_agent_id_fkey"


class UnknownAgentError(ValueError):
    """The lead names an agent that does not exist."""


async def insert_assigned_lead(
    conn: PoolConnectionProxy,
    *,
    name: str,
    email: str,
    phone: str,
    property: str,
    source: str,
    agent_id: int | None,
) -> int:
    """Insert a lead for `agent_id`, or for the next agent in turn when it is None; its id.

    Raises:
        UnknownAgentError: `agent_id` names no agent (the statement failed: the caller's
            transaction is to be rolled back).
    """
    try:
        lead_id: int = await conn.fetchval(
            QUERIES.insert_assigned_lead, name, email, phone, property, source, agent_id
        )
    except asyncpg.ForeignKeyViolationError as err:
        if err.constraint_name != AGENT_FOREIGN_KEY:
            raise
        raise UnknownAgentError(f"no agent with id {agent_id}") from None
    return lead_id
