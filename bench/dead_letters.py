"""How long a job's failure takes to show in `offload dlq list`, on the embedded services.

Each sample queues an email the SMTP sink refuses with 550 (one attempt), and measures
from the moment the job saw its last attempt fail (the entry's `failed_at`, the workflow
clock right after the failed activity) to the moment the entry is listed (the query
`offload dlq list` runs). The baseline is the job itself: from queueing it to its failure.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowFailureError

from bench.rows import Row, print_and_exit
from offload.db import create_pool, migrate
from offload.dev.stack import EmbeddedPostgres, SmtpSink, TemporalDevServer
from offload.jobs.dead_letters import list_dead_letters
from offload.jobs.email import enqueue_email
from offload.models import EmailJob, RetryConfig
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from workers.main import build_workers, run_workers

SAMPLES = 20


async def measure() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        temporal = TemporalDevServer(port=free_port(), ui_port=None, db_file=data / "t.sqlite")
        postgres = EmbeddedPostgres(data / "pg", port=free_port(), durable=False)
        sink = SmtpSink(data / "mail", port=free_port())
        await temporal.start()
        await postgres.start()
        sink.start()
        try:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                TEMPORAL_ADDRESS=temporal.address,
                DATABASE_URL=postgres.dsn(),
                SMTP_PORT=sink.port,
                OFFLOAD_DATA_DIR=data / "data",
            )
            return await _measure(settings, sink)
        finally:
            sink.stop()
            postgres.stop()
            await temporal.stop()


async def _measure(settings: Settings, sink: SmtpSink) -> list[Row]:
    pool = await create_pool(settings)
    await migrate(pool)
    client = await connect(settings)
    sink.rules.set("nobody@example.com", "550 5.1.1 No such user")
    workers = build_workers(client, settings, pool, ["workflows", "email", "default"])
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    listed_after: list[float] = []
    job_took: list[float] = []
    try:
        for _ in range(SAMPLES):
            job = EmailJob(
                to="nobody@example.com",
                template="lead-confirmation",
                data={"name": "A", "property": "B"},
                idempotency_key=str(uuid.uuid4()),
                retry=RetryConfig(maximum_attempts=1),
            )
            started = time.monotonic()
            handle = await enqueue_email(client, settings, job)
            try:
                await handle.result()
            except WorkflowFailureError:
                job_took.append(time.monotonic() - started)
            while True:
                rows = [r for r in await list_dead_letters(pool) if r["workflow_id"] == handle.id]
                if rows:
                    seen = datetime.now(UTC)
                    break
                await asyncio.sleep(0.005)
            listed_after.append((seen - rows[0]["failed_at"]).total_seconds())
    finally:
        stop.set()
        await running
        await pool.close()
    figure = statistics.median(listed_after)
    baseline = statistics.median(job_took)
    return [
        Row.with_goal(
            "<=",
            2.0,
            name="dead letter: last failure -> listed (median)",
            figure=f"{figure * 1000:.0f} ms",
            baseline=f"{baseline * 1000:.0f} ms (queue -> Failed, one refused attempt)",
            ratio=figure / baseline,
            note=f"{SAMPLES} samples, p max {max(listed_after) * 1000:.0f} ms",
        )
    ]


if __name__ == "__main__":
    print_and_exit(measure)
