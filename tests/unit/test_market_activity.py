"""refresh_market_data: a feed that does not validate fails for good, naming the field."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.market import MarketActivities, MarketDataUnavailableError
from offload.dev.stack import SampleFeedServer
from offload.models import MarketRefresh
from offload.settings import Settings


class NoPool:
    async def execute(self, *args: Any) -> str:
        raise AssertionError("nothing may be written")


def activities(url: str, timeout: float = 5) -> MarketActivities:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        MARKET_DATA_URL=url,
        OFFLOAD_MARKET_DATA_TIMEOUT_SECONDS=timeout,
    )
    return MarketActivities(settings, NoPool())  # type: ignore[arg-type]


async def refresh(market: MarketActivities) -> None:
    await ActivityEnvironment().run(
        market.refresh_market_data,
        MarketRefresh(day="2026-11-27"),  # type: ignore[arg-type]
    )


async def test_an_invalid_field_is_non_retryable_and_named(feed: SampleFeedServer) -> None:
    feed.body = (
        b'{"areas": [{"area": "Harbour", "median_price": "cheap", "listings": 3,'
        b' "days_on_market": 2}]}'
    )
    with pytest.raises(ApplicationError) as raised:
        await refresh(activities(feed.url))
    assert raised.value.non_retryable
    assert raised.value.type == "InvalidMarketData"
    assert "areas.0.median_price" in str(raised.value)


async def test_a_missing_field_and_non_json_are_non_retryable(feed: SampleFeedServer) -> None:
    feed.body = b'{"areas": [{"area": "Harbour", "median_price": 1, "listings": 3}]}'
    with pytest.raises(ApplicationError, match=r"areas\.0\.days_on_market"):
        await refresh(activities(feed.url))
    feed.body = b"<html>maintenance</html>"
    with pytest.raises(ApplicationError) as raised:
        await refresh(activities(feed.url))
    assert raised.value.non_retryable


async def test_a_5xx_or_an_unreachable_feed_is_retried(feed: SampleFeedServer) -> None:
    feed.status = 503
    with pytest.raises(MarketDataUnavailableError, match="HTTP 503"):
        await refresh(activities(feed.url))
    feed.stop()
    with pytest.raises(MarketDataUnavailableError):
        await refresh(activities(feed.url))


async def test_a_404_is_non_retryable(feed: SampleFeedServer) -> None:
    with pytest.raises(ApplicationError) as raised:
        await refresh(activities(feed.url.replace("market-data", "nope")))
    assert raised.value.non_retryable and "HTTP 404" in str(raised.value)


async def test_a_feed_that_does_not_answer_in_time_is_retried() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/market-data.json"
        with pytest.raises(MarketDataUnavailableError, match="Timeout"):
            await refresh(activities(url, timeout=0.3))
