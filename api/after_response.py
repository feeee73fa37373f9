"""`after_response`: cheap, non-critical work run after the response is sent (a waitUntil).

A request log line or a pageview may be lost without harm; a confirmation email may not.
Work that must not be lost is a started workflow (see the outbox), never an after_response
task: these run in the API process and die with it.

Each task runs with a timeout, at most `max_tasks` are in flight (more are dropped and
counted), a failure is counted and logged by type only, and none can delay or fail the
response it follows. Shutdown drains them: it waits for the running ones, up to a limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Request

from api.metrics import ApiMetrics

log = logging.getLogger(__name__)

Task = Callable[..., Awaitable[Any]]


class AfterResponseRunner:
    """The tasks in flight of one app, bounded, timed out, counted and drained."""

    def __init__(self, metrics: ApiMetrics, *, timeout: float, max_tasks: int) -> None:
        self.metrics = metrics
        self.timeout = timeout
        self.max_tasks = max_tasks
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def spawn(self, name: str, fn: Task, *args: Any) -> bool:
        """Run `fn(*args)` in the background; False when too many are in flight already."""
        if len(self._tasks) >= self.max_tasks:
            self.metrics.after_response_failures.labels(task=name, reason="overloaded").inc()
            log.warning("after_response %s dropped: %d tasks in flight", name, self.max_tasks)
            return False
        task = asyncio.create_task(self._run(name, fn, args), name=f"after_response {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, name: str, fn: Task, args: tuple[Any, ...]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await fn(*args)
        except TimeoutError:
            self.metrics.after_response_failures.labels(task=name, reason="timeout").inc()
            log.warning("after_response %s timed out after %gs", name, self.timeout)
        except Exception as err:
            # Its arguments may hold personal data: log the error's type only.
            self.metrics.after_response_failures.labels(task=name, reason="error").inc()
            log.warning("after_response %s failed: %s", name, type(err).__name__)
        else:
            self.metrics.after_response_done.labels(task=name).inc()

    async def drain(self, seconds: float) -> None:
        """Wait up to `seconds` for the tasks in flight, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("after_response: cancelled %d task(s) at shutdown", len(pending))
            await asyncio.wait(pending)


class AfterResponse:
    """What a route hands over: work to start once its response has been sent."""

    def __init__(self, runner: AfterResponseRunner, background: BackgroundTasks) -> None:
        self._runner = runner
        self._background = background

    def __call__(self, name: str, fn: Task, *args: Any) -> None:
        """Run `fn(*args)` after the response, under the name `name` in metrics and logs."""
        # Starlette runs background tasks after the body is sent, but inside the request's
        # cycle; spawning at that point keeps the connection free for its next request.
        self._background.add_task(self._spawn, name, fn, *args)

    async def _spawn(self, name: str, fn: Task, *args: Any) -> None:
        self._runner.spawn(name, fn, *args)


async def after_response_dependency(request: Request, background: BackgroundTasks) -> AfterResponse:
    runner: AfterResponseRunner = request.app.state.after_response
    return AfterResponse(runner, background)


# A route takes `after_response: AfterResponseParam` and calls
# `after_response("pageview", track_pageview, ...)`.
AfterResponseParam = Annotated[AfterResponse, Depends(after_response_dependency)]
