"""Abuse limits of the public routes, counted in PostgreSQL so that every API process shares them.

- Per client address: past `OFFLOAD_API_CLIENT_RATE_LIMIT` requests in a window of
  `OFFLOAD_API_CLIENT_RATE_WINDOW_SECONDS`, a client gets 429 with `Retry-After` and nothing
  is written. The address is the one uvicorn sets: the peer's, or, from a proxy listed in
  `OFFLOAD_API_FORWARDED_ALLOW_IPS`, the client's in `X-Forwarded-For`.
- Per recipient: at most `OFFLOAD_API_RECIPIENT_EMAIL_LIMIT` confirmation emails to one
  mailbox per `OFFLOAD_API_RECIPIENT_WINDOW_SECONDS`, however many leads name it. A lead past
  that is saved all the same; it only queues no email.

Counters are fixed windows aligned to the epoch (a day is a UTC day); a bucket is a hash of
the address, so the table holds no address, and no address is logged.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from asyncpg.pool import PoolConnectionProxy
from fastapi import Depends, Request
from starlette.datastructures import Address

from api.after_response import AfterResponseParam
from api.context import ContextParam
from api.errors import ApiError
from api.metrics import ApiMetrics
from offload.db import QUERIES, Pool
from offload.settings import Settings

# How often each API process deletes the counters of ended windows, and how many at once.
PRUNE_EVERY_SECONDS = 600.0
PRUNE_BATCH = 5000

# IPv6 clients get a /64 each from their provider: counting single addresses would let one
# client take 2**64 of them.
IPV6_CLIENT_PREFIX = 64


@dataclass(frozen=True)
class Hit:
    """One request counted in its bucket's window: the hits so far, and when the window ends."""

    hits: int
    seconds_left: float

    @property
    def retry_after(self) -> str:
        """The `Retry-After` value: whole seconds until the window ends, at least 1."""
        return str(max(1, math.ceil(self.seconds_left)))


async def count_hit(executor: Pool | PoolConnectionProxy, bucket: str, window_seconds: int) -> Hit:
    """Count a hit on `bucket` in its current window, on a pool or in a caller's transaction."""
    row = await executor.fetchrow(QUERIES.rate_limit_hit, bucket, window_seconds)
    assert row is not None
    return Hit(hits=row["hits"], seconds_left=row["seconds_left"])


def _bucket(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def client_bucket(client: Address | None) -> str:
    """The bucket of a client address; an IPv6 client's is its /64."""
    host = client.host if client is not None else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _bucket("client", host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _bucket("client", str(address.ipv4_mapped))
        network = ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
        return _bucket("client", str(network))
    return _bucket("client", str(address))


def recipient_bucket(email: str) -> str:
    """The bucket of a mailbox: the address lower-cased, without a `+tag` (ada+1@ is ada@)."""
    local, _, domain = email.strip().lower().rpartition("@")
    return _bucket("recipient", f"{local.split('+', 1)[0]}@{domain}")


class RateLimits:
    """The limits of one app: its settings, its metrics, and when it last pruned."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._next_prune = 0.0

    async def admit_client(self, pool: Pool, client: Address | None) -> Hit | None:
        """Count a request of `client`; None when the limit is off.

        Raises:
            ApiError: 429 with `Retry-After`, the client is over its rate.
        """
        limit = self.settings.api_client_rate_limit
        if limit == 0:
            return None
        hit = await count_hit(
            pool, client_bucket(client), self.settings.api_client_rate_window_seconds
        )
        if hit.hits > limit:
            self.metrics.rate_limited.labels(limit="client").inc()
            raise ApiError(
                429,
                f"over {limit} requests in {self.settings.api_client_rate_window_seconds} s "
                f"from this address; retry in {hit.retry_after} s",
                headers={"Retry-After": hit.retry_after},
            )
        return hit

    async def may_email(self, conn: PoolConnectionProxy, email: str) -> bool:
        """Count a confirmation email to `email` in the caller's transaction; False past the
        limit (then the lead is saved without one).

        In the lead's transaction, a lead that rolls back takes its count with it.
        """
        limit = self.settings.api_recipient_email_limit
        if limit == 0:
            return True
        hit = await count_hit(
            conn, recipient_bucket(email), self.settings.api_recipient_window_seconds
        )
        return hit.hits <= limit

    def prune_due(self) -> bool:
        """Whether this process should prune now (at most every `PRUNE_EVERY_SECONDS`)."""
        now = time.monotonic()
        if now < self._next_prune:
            return False
        self._next_prune = now + PRUNE_EVERY_SECONDS
        return True


async def prune(pool: Pool) -> None:
    """Delete the counters of ended windows, a batch at a time."""
    while await pool.execute(QUERIES.prune_rate_limits, PRUNE_BATCH) == f"DELETE {PRUNE_BATCH}":
        pass


def rate_limits_of(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


async def limit_client(
    request: Request, context: ContextParam, after_response: AfterResponseParam
) -> None:
    """A route's dependency: 429 with `Retry-After` for a client over its rate."""
    limits = rate_limits_of(request)
    await limits.admit_client(context.pool, request.client)
    if limits.prune_due():
        # Housekeeping that may be lost: the next process or window prunes instead.
        after_response("rate_limit_prune", prune, context.pool)


ClientLimit = Depends(limit_client)
