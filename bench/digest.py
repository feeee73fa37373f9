"""The daily digest to 10,000 subscribers against a plain aiosmtplib loop, both into one sink.

Both sides send the same 10,000 messages (rendered from `daily-digest`, one per agent) to the
same aiosmtpd sink. The baseline is the fastest a script could do it: one connection, one
message after another, no database, no Temporal. The digest is the real job: a
`SendDigestEmailsWorkflow` on the dev server, reading agents and leads from PostgreSQL,
batches of recipients per activity, each over one connection, logged in `digest_log`.
Run it with `python -m bench.digest [--subscribers N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.digest import digest_key
from activities.email import EmailActivities
from bench.rows import Row, print_and_exit
from offload import mail, queues
from offload.db import create_pool, migrate
from offload.dev.stack import EmbeddedPostgres, SmtpSink, TemporalDevServer
from offload.models import DigestPlan, ScheduledRun
from offload.net import free_port
from offload.settings import Settings
from offload.windows import previous_day
from workers.main import build_workers, run_workers
from workflows.maintenance import SendDigestEmailsWorkflow

GOAL = 0.7
SCHEDULED = datetime(2026, 11, 28, tzinfo=UTC)


async def seed(dsn: str, subscribers: int, until: datetime) -> None:
    """`subscribers` agents, each with two leads created the day before `until`."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO agents (name, email) SELECT 'Agent ' || g, 'agent' || g || '@example.com'"
            " FROM generate_series(1, $1) g",
            subscribers,
        )
        await conn.execute(
            "INSERT INTO leads (agent_id, name, email, property, source, score, created_at)"
            " SELECT a.id, 'Lead ' || a.id || '-' || n, 'lead@example.com', n || ' Mill Lane',"
            " 'website', 40 + n, $1::timestamptz - interval '6 hours' * n"
            " FROM agents a, generate_series(1, 2) n",
            until,
        )
    finally:
        await conn.close()


async def plain_loop(settings: Settings, dsn: str, plan: DigestPlan) -> float:
    """Seconds for a plain aiosmtplib loop to render and send every digest, one connection."""
    conn = await asyncpg.connect(dsn)
    try:
        agents = await conn.fetch("SELECT id, name, email FROM agents ORDER BY id")
        leads: dict[int, list[dict[str, object]]] = {}
        for row in await conn.fetch(
            "SELECT agent_id, name, property, source, score FROM leads ORDER BY agent_id, id"
        ):
            leads.setdefault(row["agent_id"], []).append(
                {k: row[k] for k in ("name", "property", "source", "score")}
            )
    finally:
        await conn.close()
    smtp = EmailActivities(settings, None).smtp_client()  # type: ignore[arg-type]
    started = time.perf_counter()
    async with smtp:
        for agent in agents:
            key = digest_key(plan, agent["id"])
            composed = mail.compose(
                "daily-digest",
                {"name": agent["name"], "day": plan.day.isoformat(), "leads": leads[agent["id"]]},
                to=agent["email"],
                idempotency_key=key,
                mail_from=settings.mail_from,
                date=datetime.now(UTC),
            )
            await smtp.send_message(composed.message)
    return time.perf_counter() - started


async def digest_run(settings: Settings, client: Client, dsn: str) -> tuple[float, int]:
    """Seconds for the digest job to send every digest, and how many it sent."""
    pool = await create_pool(settings, max_size=10)
    workers = build_workers(client, settings, pool, list(queues.BY_KIND))
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    try:
        job = ScheduledRun(
            scheduled_time=SCHEDULED,
            batch_size=settings.digest_batch_size,
            parallel_batches=settings.digest_parallel_batches,
            retry=settings.retry,
        )
        started = time.perf_counter()
        result = await client.execute_workflow(
            SendDigestEmailsWorkflow.run,
            job,
            id=f"bench-digest-{uuid.uuid4()}",
            task_queue=queues.named(queues.WORKFLOWS, settings.task_queue_prefix),
        )
        return time.perf_counter() - started, result.sent
    finally:
        stop.set()
        await running
        await pool.close()


async def measure(subscribers: int = 10_000) -> list[Row]:
    """One row: the digest's rate as a share of the plain loop's, both into the same sink."""
    with tempfile.TemporaryDirectory(prefix="bench-digest-") as tmp:
        root = Path(tmp)
        postgres = EmbeddedPostgres(root / "pg", port=free_port(), durable=False)
        temporal = TemporalDevServer(port=free_port(), ui_port=None, db_file=root / "t.sqlite")
        baseline_sink = SmtpSink(root / "mail-baseline", port=free_port())
        digest_sink = SmtpSink(root / "mail-digest", port=free_port())
        await postgres.start()
        await temporal.start()
        try:
            dsn = postgres.dsn()
            day, window = previous_day(SCHEDULED, "UTC")
            plan = DigestPlan(day=day, until=window.end)
            settings = Settings(
                _env_file=None,
                TEMPORAL_ADDRESS=temporal.address,
                DATABASE_URL=dsn,
                SMTP_HOST=baseline_sink.host,
                SMTP_PORT=baseline_sink.port,
                OFFLOAD_TASK_QUEUE_PREFIX="bench-",
            )
            pool = await create_pool(settings, max_size=1)
            await migrate(pool)
            await pool.close()
            await seed(dsn, subscribers, window.end)

            baseline_sink.start()
            baseline = await plain_loop(settings, dsn, plan)
            baseline_sink.stop()

            digest_sink.start()
            settings = settings.model_copy(update={"smtp_port": digest_sink.port})
            client = await Client.connect(temporal.address, data_converter=pydantic_data_converter)
            elapsed, sent = await digest_run(settings, client, dsn)
            digest_sink.stop()
            delivered = len(list(digest_sink.maildir.glob("*.eml")))
        finally:
            await temporal.stop()
            postgres.stop()
    assert sent == delivered == subscribers, (sent, delivered, subscribers)
    digest_rate = subscribers / elapsed
    baseline_rate = subscribers / baseline
    ratio = digest_rate / baseline_rate
    return [
        Row.with_goal(
            ">=",
            GOAL,
            name=f"digest to {subscribers:,} subscribers",
            figure=f"{digest_rate:,.0f} msg/s ({elapsed:.1f} s)",
            baseline=f"{baseline_rate:,.0f} msg/s ({baseline:.1f} s, plain aiosmtplib loop)",
            ratio=ratio,
            note=f"batches of {settings.digest_batch_size}, "
            f"{settings.digest_parallel_batches} in parallel, {os.cpu_count()} CPUs",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=10_000)
    args = parser.parse_args()
    print_and_exit(lambda: measure(args.subscribers))


if __name__ == "__main__":
    main()
