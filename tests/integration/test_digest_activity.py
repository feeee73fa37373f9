"""send_digest_batch against PostgreSQL and the SMTP sink: resume, once per day, refusals."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.digest import DigestActivities
from activities.email import SmtpTransientError
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.models import DigestBatch, DigestBatchResult, DigestPlan
from offload.settings import Settings

DAY = date(2026, 11, 27)
PLAN = DigestPlan(day=DAY, until=datetime(2026, 11, 28, tzinfo=UTC))


async def agents_with_leads(pool: Pool, count: int) -> list[int]:
    ids = []
    for i in range(count):
        agent_id = await pool.fetchval(
            "INSERT INTO agents (name, email) VALUES ($1, $2) RETURNING id",
            f"Agent {i}",
            f"agent{i}@example.com",
        )
        await pool.execute(
            "INSERT INTO leads (agent_id, name, email, property, created_at)"
            " VALUES ($1, 'Ada Lovelace', 'lead@example.com', 'Mill House', $2)",
            agent_id,
            PLAN.until - timedelta(hours=5),
        )
        ids.append(agent_id)
    return ids


async def run_batch(
    activities: DigestActivities, ids: list[int], heartbeats: list[Any], resume: Any = None
) -> DigestBatchResult:
    env = ActivityEnvironment()
    if resume is not None:
        env.info = dataclasses.replace(env.info, heartbeat_details=[resume])
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    result: DigestBatchResult = await env.run(
        activities.send_digest_batch, DigestBatch(plan=PLAN, agent_ids=ids)
    )
    return result


async def test_a_batch_resumes_after_the_last_recipient_sent(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    ids = await agents_with_leads(pool, 6)
    activities = DigestActivities(settings, pool)
    smtp_sink.rules.set("agent4@example.com", "451 4.3.0 Try again later")
    heartbeats: list[Any] = []
    with pytest.raises(SmtpTransientError):
        await run_batch(activities, ids, heartbeats)
    assert heartbeats[-1] == (3, 4, 0)  # index 3 was the last sent and logged
    assert len(smtp_sink.messages()) == 4

    smtp_sink.rules.set("agent4@example.com", None)
    result = await run_batch(activities, ids, heartbeats, resume=list(heartbeats[-1]))
    assert result.sent == 6
    messages = smtp_sink.messages()
    assert sorted(m["To"] for m in messages) == [f"agent{i}@example.com" for i in range(6)]
    assert len({m["Message-ID"] for m in messages}) == 6
    assert await pool.fetchval("SELECT count(*) FROM digest_log WHERE day = $1", DAY) == 6
    assert await pool.fetchval("SELECT count(*) FROM email_log") == 6

    # The whole batch again (a second run of the day): nobody gets a second digest.
    again = await run_batch(activities, ids, [])
    assert (again.sent, again.already_sent) == (0, 6)
    assert len(smtp_sink.messages()) == 6


async def test_a_refused_address_does_not_hold_back_the_batch(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    ids = await agents_with_leads(pool, 3)
    smtp_sink.rules.set("agent1@example.com", "550 5.1.1 No such user")
    result = await run_batch(DigestActivities(settings, pool), ids, [])
    assert (result.sent, result.refused) == (2, 1)
    assert len(smtp_sink.messages()) == 2


async def test_the_next_digest_starts_where_the_last_one_ended(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    [agent] = await agents_with_leads(pool, 1)
    activities = DigestActivities(settings, pool)
    assert (await run_batch(activities, [agent], [])).sent == 1
    next_day = DigestPlan(day=DAY + timedelta(days=1), until=PLAN.until + timedelta(days=1))
    env = ActivityEnvironment()
    quiet = await env.run(
        activities.send_digest_batch, DigestBatch(plan=next_day, agent_ids=[agent])
    )
    assert (quiet.sent, quiet.no_leads) == (0, 1)  # yesterday's lead is not news today
    assert len(smtp_sink.messages()) == 1
