"""`offload stats` and the worker's metrics on the dev server, with real queues and jobs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

from temporalio.client import Client

from offload.db import Pool
from offload.jobs.email import enqueue_email
from offload.jobs.stats import Stats, collect_stats, latency_stats, scrape
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from tests.api import eventually
from tests.harness import offload_process, run_offload, running_worker
from tests.integration.test_email_job import lead_email

JOBS = 5


def workflow_backlog(stats: Stats) -> int:
    [queue] = [q for q in stats.queues if q.type == "workflow"]
    return queue.backlog


def stats_cli(settings: Settings) -> dict[str, object]:
    done = run_offload(settings, "stats", "--json", "--metrics-url", "")
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


async def test_backlog_rises_without_a_worker_and_drains_when_one_polls(
    client: Client, settings: Settings, pool: Pool
) -> None:
    for _ in range(JOBS):
        await enqueue_email(client, settings, lead_email(settings))

    latest: list[Stats] = []

    async def backlog_is(count: int) -> bool:
        latest[:] = [await collect_stats(client, settings, "")]
        return workflow_backlog(latest[0]) == count

    await eventually(lambda: backlog_is(JOBS), what=f"a backlog of {JOBS}")
    queued = stats_cli(settings)
    [workflow_queue] = [q for q in queued["queues"] if q["type"] == "workflow"]  # type: ignore[attr-defined]
    assert workflow_queue["backlog"] == JOBS
    assert workflow_queue["pollers"] == 0
    assert workflow_queue["backlog_age_seconds"] > 0
    [email_jobs] = [j for j in queued["jobs"] if j["kind"] == "SendEmailWorkflow"]  # type: ignore[attr-defined]
    assert email_jobs["running"] == JOBS

    async with running_worker(client, settings, pool):

        async def drained() -> bool:
            stats = await collect_stats(client, settings, "")
            [jobs] = [j for j in stats.jobs if j.kind == "SendEmailWorkflow"]
            return workflow_backlog(stats) == 0 and jobs.closed_last_hour.get("completed") == JOBS

        await eventually(drained, what="an empty backlog and every job completed")
        drained_stats = stats_cli(settings)
    assert all(q["backlog"] == 0 for q in drained_stats["queues"])  # type: ignore[attr-defined]
    [email_jobs] = [j for j in drained_stats["jobs"] if j["kind"] == "SendEmailWorkflow"]  # type: ignore[attr-defined]
    assert email_jobs == {
        "kind": "SendEmailWorkflow",
        "running": 0,
        "closed_last_hour": {"completed": JOBS},
    }
    assert drained_stats["schedules"] == []


async def test_the_worker_serves_sdk_and_job_metrics(settings: Settings, pool: Pool) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = settings.model_copy(update={"metrics_address": address})
    client = await connect(settings, serve_metrics=True)
    async with running_worker(client, settings, pool):
        await (await enqueue_email(client, settings, lead_email(settings))).result()
        text = await asyncio.to_thread(scrape, f"http://{address}/metrics")
    assert text is not None

    assert 'offload_jobs_started_total{kind="SendEmailWorkflow"' in text
    assert 'offload_jobs_succeeded_total{kind="SendEmailWorkflow"' in text
    latency = {lat.name: lat for lat in latency_stats(text)}
    assert latency["job enqueue-to-done"].count == 1
    # The email went out by the local first attempt: no activity task, a local activity.
    assert latency["local activity execution"].count >= 1
    # Started eagerly (the worker shares the client), the job's first workflow task never
    # waited in the queue: the SDK records no schedule-to-start for it.
    assert latency["workflow schedule-to-start"].count == 0
    assert latency["job enqueue-to-done"].p50 is not None


async def test_watch_prints_a_refresh_per_interval_until_sigint(settings: Settings) -> None:
    process = offload_process(
        settings,
        "stats",
        "--watch",
        "--json",
        "--interval",
        "0.2",
        "--metrics-url",
        "",
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = json.loads(await asyncio.to_thread(process.stdout.readline))
        second = json.loads(await asyncio.to_thread(process.stdout.readline))
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 30)
        process.stdout.close()
    assert code == 0
    assert second["collected_at"] > first["collected_at"]
    queue = first["queues"][0]["queue"]
    assert queue == f"{settings.task_queue_prefix}offload-workflows"
