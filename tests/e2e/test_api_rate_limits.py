"""The abuse limits of POST /leads, across two API apps that share only PostgreSQL.

Two apps built by `create_app` on one database stand for two API processes: each has its
own metrics and state, so whatever they agree on went through the database.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from api.rate_limits import prune
from offload.db import Pool, create_pool
from offload.dev.stack import SmtpSink
from offload.settings import Settings
from tests.api import delivered, metric_samples, serving

ADDRESS = "target@example.com"
FLOOD = 1000


def rate_limited(metrics_text: str, limit: str) -> float:
    return sum(
        value
        for labels, value in metric_samples(metrics_text, "offload_api_rate_limited_total")
        if labels["limit"] == limit
    )


def lead(n: int, email: str = ADDRESS) -> dict[str, str]:
    return {"name": f"Lead {n}", "email": email, "property": f"{n} Harbour View"}


@pytest.mark.usefixtures("worker")
async def test_a_flood_naming_one_address_saves_every_lead_and_sends_it_the_limit(
    settings: Settings, pool: Pool, client: Client, smtp_sink: SmtpSink
) -> None:
    own = settings.model_copy(update={"api_recipient_email_limit": 3, "api_client_rate_limit": 10})
    gate = asyncio.Semaphore(20)
    async with AsyncExitStack() as stack:
        # A pool each, as two processes would have, sized for the flood; no request log or
        # pageview, which this test is not about.
        pools = [await create_pool(own, max_size=10) for _ in range(2)]
        for each in pools:
            stack.push_async_callback(each.close)
        urls = [
            await stack.enter_async_context(
                serving(create_app(own, pool=each, client=client, after_lead={}), own)
            )
            for each in pools
        ]
        apis = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=60))
            for url in urls
        ]

        async def post(n: int) -> httpx.Response:
            # 100 clients behind the trusted local proxy, 10 leads each: none over its rate.
            client_address = f"198.51.100.{n % 100}"
            async with gate:
                return await apis[n % 2].post(
                    "/leads", json=lead(n), headers={"x-forwarded-for": client_address}
                )

        started = time.perf_counter()
        answers = await asyncio.gather(*(post(n) for n in range(FLOOD)))
        print(f"{FLOOD} leads in {time.perf_counter() - started:.1f} s")
        assert [r.status_code for r in answers] == [201] * FLOOD, {
            r.status_code: r.text for r in answers if r.status_code != 201
        }
        per_recipient = await delivered(smtp_sink, 3)
        assert per_recipient == {ADDRESS: 3}
        metrics = [(await api.get("/metrics")).text for api in apis]

    assert await pool.fetchval("SELECT count(*) FROM leads WHERE email = $1", ADDRESS) == FLOOD
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
    # Each app counts what it held back; the two together, every lead past the third.
    assert sum(rate_limited(text, "recipient") for text in metrics) == FLOOD - 3
    assert all(rate_limited(text, "recipient") > 0 for text in metrics)


async def test_a_mailbox_is_one_however_its_address_is_spelt(
    settings: Settings, pool: Pool, client: Client
) -> None:
    own = settings.model_copy(update={"api_recipient_email_limit": 1})
    async with (
        serving(create_app(own, pool=pool, client=client), own) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        for n, spelling in enumerate(["ada@example.com", "Ada+promo@Example.com"]):
            assert (await http.post("/leads", json=lead(n, spelling))).status_code == 201
    assert await pool.fetchval("SELECT count(*) FROM leads") == 2
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1


async def until_a_window_begins(window_seconds: int) -> None:
    # The windows are aligned to the epoch: start a burst at the beginning of one, so that
    # all of it falls in one window however slow the machine.
    await asyncio.sleep(window_seconds - time.time() % window_seconds + 0.05)


async def test_a_client_over_its_rate_gets_429_with_retry_after_and_every_lead_is_saved(
    settings: Settings, pool: Pool, client: Client
) -> None:
    limit, window = 5, 4
    own = settings.model_copy(
        update={"api_client_rate_limit": limit, "api_client_rate_window_seconds": window}
    )
    async with AsyncExitStack() as stack:
        apis = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=await stack.enter_async_context(
                        serving(create_app(own, pool=pool, client=client), own)
                    ),
                    headers={"x-forwarded-for": "203.0.113.7"},
                )
            )
            for _ in range(2)
        ]
        other_client = {"x-forwarded-for": "203.0.113.8"}
        await until_a_window_begins(window)
        # The same client, through one API then the other: they count together.
        answers = [
            await apis[n % 2].post("/leads", json=lead(n, f"lead{n}@example.com"))
            for n in range(limit + 3)
        ]
        others = await apis[0].post(
            "/leads", json=lead(99, "other@example.com"), headers=other_client
        )
        assert [r.status_code for r in answers] == [201] * limit + [429] * 3, [
            r.text for r in answers
        ]
        assert others.status_code == 201, others.text
        refused = answers[limit]
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= window
        # Nothing of a refused lead was written.
        assert await pool.fetchval("SELECT count(*) FROM leads") == limit + 1
        metrics = [(await api.get("/metrics")).text for api in apis]
        assert sum(rate_limited(text, "client") for text in metrics) == 3

        # A client that waits as told gets its leads in.
        await asyncio.sleep(retry_after)
        again = [
            await apis[0].post("/leads", json=lead(n, f"lead{n}@example.com"))
            for n in range(limit, limit + 3)
        ]
        assert [r.status_code for r in again] == [201] * 3, [r.text for r in again]
    emails = {row["email"] for row in await pool.fetch("SELECT email FROM leads")}
    assert emails == {f"lead{n}@example.com" for n in range(limit + 3)} | {"other@example.com"}


async def test_the_counters_of_ended_windows_are_pruned(pool: Pool) -> None:
    await pool.execute(
        "INSERT INTO api_rate_limits (bucket, window_end, hits) VALUES"
        " ('ended', now() - interval '1 second', 3), ('current', now() + interval '1 hour', 1)"
    )
    await prune(pool)
    assert [r["bucket"] for r in await pool.fetch("SELECT bucket FROM api_rate_limits")] == [
        "current"
    ]
