"""The workflow worker that `offload api` hosts, so that the API's job starts are eager."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client

from api.context import ApiContext
from offload.temporal import TemporalUnavailableError, connect
from workers.main import build_workers, run_workers

log = logging.getLogger(__name__)

# The API's worker polls the workflow queue only: a job's activities on their own queues
# (a retried email, a report's chunks) stay with the worker processes.
QUEUE_KINDS = ["workflows"]


class ApiWorker:
    """Polls `offload-workflows` from the API process once Temporal answers.

    A start asks to be eager, and the SDK grants it only when a worker of the same client
    polls the workflow queue: then the server hands the job's first workflow task back in
    the start's answer, and this worker runs it at once (with the email's local first
    attempt). The API's own client is lazy, so that the API starts and takes leads while
    Temporal is down, and the SDK runs no worker on a lazy client: so this connects a client
    of its own, retrying until Temporal answers, hands it to the routes, and runs the worker
    on it. Its jobs are counted at `OFFLOAD_METRICS_ADDRESS`, as a worker's are.
    """

    def __init__(self, context: ApiContext, *, max_backoff_seconds: float = 5.0) -> None:
        self.context = context
        self.max_backoff_seconds = max_backoff_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, then run the worker until `stop` is set; shutdown drains it as any
        worker's does (running workflow tasks and local activities finish first)."""
        client = await self._connect(stop)
        if client is None:
            return
        settings = self.context.settings
        workers = build_workers(client, settings, self.context.pool, QUEUE_KINDS)
        # From here the routes' starts go through the worker's client, and so are eager; and
        # Temporal answers, so starts paused by an earlier failure resume now.
        self.context.client = client
        self.context.starts_paused_until = 0.0
        log.info("api worker polling %s", ", ".join(w.task_queue for w in workers))
        await run_workers(workers, stop)

    async def _connect(self, stop: asyncio.Event) -> Client | None:
        """A connected client, or None when `stop` is set first."""
        settings = self.context.settings
        delay = 0.5
        while not stop.is_set():
            try:
                async with asyncio.timeout(settings.api_start_timeout_seconds * 5):
                    return await connect(settings, serve_metrics=True)
            except (TemporalUnavailableError, TimeoutError) as err:
                log.warning("api worker: Temporal unavailable (%s), retrying", type(err).__name__)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, self.max_backoff_seconds)
        return None
