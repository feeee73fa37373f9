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
from offload.models import DigestBatch, DigestBatchProgress, DigestBatchResult, DigestPlan
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
    activities: DigestActivities,
    ids: list[int],
    heartbeats: list[Any],
    resume: Any = None,
    *,
    raise_failures: bool = False,
) -> DigestBatchResult:
    env = ActivityEnvironment()
    if resume is not None:
        env.info = dataclasses.replace(env.info, heartbeat_details=[resume])
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    result: DigestBatchResult = await env.run(
        activities.send_digest_batch,
        DigestBatch(plan=PLAN, agent_ids=ids, raise_failures=raise_failures),
    )
    return result


async def test_a_batch_whose_connection_is_lost_resumes_after_the_last_recipient_sent(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    ids = await agents_with_leads(pool, 6)
    activities = DigestActivities(settings, pool)
    # 421: the server closes the conversation, so the batch cannot go on over it.
    smtp_sink.rules.set("agent4@example.com", "421 4.3.2 Service shutting down")
    heartbeats: list[Any] = []
    with pytest.raises(SmtpTransientError):
        await run_batch(activities, ids, heartbeats)
    # Index 3 was the last sent and logged.
    assert heartbeats[-1] == DigestBatchProgress(after_index=3, sent=4)
    assert len(smtp_sink.messages()) == 4

    smtp_sink.rules.set("agent4@example.com", None)
    # As an attempt of an older release heartbeated it: [index, sent, refused].
    result = await run_batch(activities, ids, heartbeats, resume=[3, 4, 0])
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


async def test_a_refused_or_deferred_address_does_not_hold_back_the_batch(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    ids = await agents_with_leads(pool, 4)
    smtp_sink.rules.set("agent1@example.com", "550 5.1.1 No such user")
    smtp_sink.rules.set("agent2@example.com", "452 4.2.2 Mailbox full")
    activities = DigestActivities(settings, pool)
    result = await run_batch(activities, ids, [])
    assert (result.sent, result.refused) == (2, 1)
    assert [(f.agent_id, f.error_type, f.retryable) for f in result.failures] == [
        (ids[1], "SmtpPermanentError", False),
        (ids[2], "SmtpTransientError", True),
    ]
    assert "452 4.2.2 Mailbox full" in result.failures[1].message
    assert len(smtp_sink.messages()) == 2

    # Retried alone, the deferred recipient's failure raises, for its activity's retries.
    with pytest.raises(SmtpTransientError):
        await run_batch(activities, [ids[2]], [], raise_failures=True)


async def test_an_address_the_server_cannot_take_does_not_hold_back_the_batch(
    settings: Settings, pool: Pool, ascii_only_sink: SmtpSink
) -> None:
    # A server without SMTPUTF8 can never take an internationalised address: that agent's
    # digest fails for good, the connection stays good for the others.
    ids = await agents_with_leads(pool, 3)
    await pool.execute("UPDATE agents SET email = $1 WHERE id = $2", "zoë@bücher.example", ids[1])
    ascii_only = settings.model_copy(update={"smtp_port": ascii_only_sink.port})
    result = await run_batch(DigestActivities(ascii_only, pool), ids, [])
    assert (result.sent, result.refused) == (2, 1)
    assert [(f.agent_id, f.error_type, f.retryable) for f in result.failures] == [
        (ids[1], "SmtpUtf8NotSupported", False)
    ]
    assert len(ascii_only_sink.messages()) == 2


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
