"""after_response tasks that are slow or fail change neither the status nor the latency."""

from __future__ import annotations

import asyncio
import statistics

import httpx
from temporalio.client import Client

from api.app import create_app
from api.context import LeadTask
from offload.db import Pool
from offload.settings import Settings
from tests.api import eventually, metric_samples, serving, timed_post

POSTS = 6
SLOW_SECONDS = 2.0


async def slow(pool: Pool, saved: object) -> None:
    await asyncio.sleep(SLOW_SECONDS)


async def broken(pool: Pool, saved: object) -> None:
    raise RuntimeError("the analytics service is down")


async def post_leads(url: str, tag: str) -> list[float]:
    """Latencies of `POSTS` leads posted one after another on one connection."""
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for n in range(POSTS):
            lead = {"name": f"Lead {n}", "email": f"{tag}{n}@example.com"}
            response, seconds = await timed_post(http, "/leads", json=lead)
            assert response.status_code == 201, response.text
            latencies.append(seconds)
    return latencies


def samples(metrics_text: str, name: str) -> dict[str, float]:
    """The values of counter `name` by its `task` and `reason` labels."""
    return {
        f"{labels['task']}/{labels.get('reason', '')}".rstrip("/"): value
        for labels, value in metric_samples(metrics_text, name)
    }


async def test_slow_and_failing_after_response_tasks_delay_and_fail_no_response(
    settings: Settings, pool: Pool, client: Client
) -> None:
    plain = create_app(settings, pool=pool, client=client, after_lead={})
    async with serving(plain, settings) as url:
        await post_leads(url, "warmup")
        without = await post_leads(url, "plain")

    tasks: dict[str, LeadTask] = {"slow": slow, "broken": broken}
    loaded = create_app(settings, pool=pool, client=client, after_lead=tasks)
    async with serving(loaded, settings) as url:
        with_tasks = await post_leads(url, "loaded")
        async with httpx.AsyncClient(base_url=url) as http:

            async def all_accounted() -> dict[str, float] | None:
                text = (await http.get("/metrics")).text
                failed = samples(text, "offload_api_after_response_failures_total")
                done = samples(text, "offload_api_after_response_done_total")
                counted = {**failed, **done}
                return counted if counted.get("slow") == POSTS else None

            counted = await eventually(all_accounted, 30)

    assert {task: counted.get(task) for task in ("broken/error", "slow")} == {
        "broken/error": POSTS,
        "slow": POSTS,
    }
    # Far below the slow task's 2 s, and about what the same app answers without tasks.
    assert max(with_tasks) < SLOW_SECONDS / 4, with_tasks
    assert statistics.median(with_tasks) < statistics.median(without) + 0.1, (with_tasks, without)
