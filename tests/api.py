"""What the API tests share: the app served on uvicorn, timing a request, waiting for mail."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.server import serve
from offload.dev.stack import SmtpSink
from offload.net import free_port
from offload.polling import wait_until
from offload.settings import Settings

T = TypeVar("T")


@asynccontextmanager
async def serving(app: FastAPI, settings: Settings) -> AsyncIterator[str]:
    """`app` on uvicorn on a free port for the duration of the block; yields its base URL."""
    port = free_port()
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(app, settings, stop, port=port, started=started))
    waiting = asyncio.create_task(started.wait())
    try:
        await asyncio.wait([task, waiting], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises why it could not start
        assert started.is_set(), "the API did not start within 30 s"
        yield f"http://127.0.0.1:{port}"
    finally:
        waiting.cancel()
        stop.set()
        await task


async def eventually(
    check: Callable[[], Awaitable[T]], seconds: float = 60, what: str = "condition"
) -> T:
    """The first truthy value of `check()`, polled until `seconds` pass (TimeoutError then)."""

    async def truthy() -> T | None:
        value = await check()
        return value if value else None

    return await wait_until(truthy, within=seconds, what=what, interval=0.05)


async def timed_post(
    http: httpx.AsyncClient, path: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    """The response to a POST and its latency in seconds, as the caller sees it."""
    started = time.perf_counter()
    response = await http.post(path, **kwargs)
    return response, time.perf_counter() - started


def metric_samples(metrics_text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric `name` in a Prometheus text page: labels and value."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name
    ]


async def delivered(sink: SmtpSink, count: int, seconds: float = 60) -> Counter[str]:
    """Wait until the sink holds `count` messages, then a moment more for any extra copy.

    Returns the messages per recipient.
    """

    async def enough() -> bool:
        return len(sink.messages()) >= count

    await eventually(enough, seconds)
    # A duplicate would come from a second start of the same job: give it time to show.
    await asyncio.sleep(1.0)
    messages = sink.messages()
    ids = [str(message["Message-ID"]) for message in messages]
    assert len(set(ids)) == len(ids), f"a Message-ID arrived twice: {ids}"
    return Counter(str(message["To"]) for message in messages)
