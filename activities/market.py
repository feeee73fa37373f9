"""Market data activities: fetch the feed at `MARKET_DATA_URL`, validate it, upsert it."""

from __future__ import annotations

from decimal import Decimal

import httpx
from pydantic import BaseModel, Field, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from offload.db import QUERIES, Pool
from offload.models import MarketRefresh, MarketRefreshResult
from offload.settings import Settings


class MarketArea(BaseModel):
    """One area's figures in the feed."""

    area: str = Field(min_length=1, max_length=200)
    median_price: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    listings: int = Field(ge=0)
    days_on_market: Decimal = Field(ge=0, max_digits=8, decimal_places=2)


class MarketFeed(BaseModel):
    """The JSON document at `MARKET_DATA_URL` (offload/data/market-sample.json is one)."""

    areas: list[MarketArea]


class MarketDataUnavailableError(Exception):
    """A timeout, a lost connection or a 5xx: the feed may answer on a later attempt."""


def parse_feed(body: bytes) -> MarketFeed:
    """The validated feed, or a non-retryable `InvalidMarketData` error naming the field."""
    try:
        return MarketFeed.model_validate_json(body)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise ApplicationError(
            f"market data field {field!r}: {first['msg']} ({err.error_count()} error(s))",
            type="InvalidMarketData",
            non_retryable=True,
        ) from None


class MarketActivities:
    """Activities on market data; the worker builds one with its settings and pool."""

    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = pool

    async def fetch_feed(self) -> bytes:
        url = self.settings.market_data_url
        if not url:
            raise ApplicationError(
                "MARKET_DATA_URL is not set", type="MarketDataNotConfigured", non_retryable=True
            )
        try:
            async with httpx.AsyncClient(timeout=self.settings.market_data_timeout_seconds) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
        except httpx.TransportError as err:
            raise MarketDataUnavailableError(f"GET market data: {type(err).__name__}") from err
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise MarketDataUnavailableError(f"GET market data: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ApplicationError(
                f"GET market data: HTTP {response.status_code}",
                type="MarketDataRefused",
                non_retryable=True,
            )
        return response.content

    @activity.defn
    async def refresh_market_data(self, refresh: MarketRefresh) -> MarketRefreshResult:
        """Fetch, validate and upsert the feed as `refresh.day`'s figures (idempotent)."""
        feed = parse_feed(await self.fetch_feed())
        areas = feed.areas
        await self.pool.execute(
            QUERIES.upsert_market_data,
            refresh.day,
            [a.area for a in areas],
            [a.median_price for a in areas],
            [a.listings for a in areas],
            [a.days_on_market for a in areas],
        )
        return MarketRefreshResult(day=refresh.day, areas=len(areas))
