"""`offload stats` and the job metrics when a job fails into the dead-letter queue."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError

from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.email import enqueue_email
from offload.jobs.stats import Stats, collect_stats, scrape
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from tests.api import eventually
from tests.dead_letters import REFUSED, email_to
from tests.harness import running_worker


async def test_a_dead_lettered_job_shows_in_stats_and_metrics(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = settings.model_copy(update={"metrics_address": address})
    metrics_url = f"http://{address}/metrics"
    client = await connect(settings, serve_metrics=True)
    smtp_sink.rules.set("nobody@example.com", REFUSED)
    latest: list[Stats] = []
    async with running_worker(client, settings, pool):
        handle = await enqueue_email(client, settings, email_to(settings, "nobody@example.com"))
        with pytest.raises(WorkflowFailureError):
            await handle.result()

        async def listed() -> bool:
            latest[:] = [await collect_stats(client, settings, metrics_url)]
            return bool(latest[0].dead_letters.by_kind)

        await eventually(listed, what="the dead letter in the summary")
        text = await asyncio.to_thread(scrape, metrics_url)

    stats = latest[0]
    assert stats.dead_letters.by_kind == {"email": {"dead": 1}}
    # Every job kind is listed; only the email job has run under this test's queues.
    active = [j.kind for j in stats.jobs if j.running or any(j.closed_last_hour.values())]
    assert active == ["SendEmailWorkflow"]
    assert text is not None
    assert 'offload_jobs_dead_lettered_total{kind="SendEmailWorkflow"' in text
    assert 'offload_jobs_succeeded_total{kind="SendEmailWorkflow"' not in text
    # The dead-letter workflow is not a job: it is neither counted nor timed.
    assert 'kind="DeadLetterWorkflow"' not in text
