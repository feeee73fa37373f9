"""One way to wait for something to be ready: poll a check until it answers, or give up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """The first answer of `check()` that is not None or False, polled every `interval` s.

    An exception from `check` propagates at once: a check that can fail while it waits (a
    server still starting) catches what it expects and returns None.

    Raises:
        TimeoutError: no answer within `within` seconds; the message says what was awaited.
    """
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {within:g}s")
        await asyncio.sleep(interval)
