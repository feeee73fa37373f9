"""What every route uses: settings, the pool, the Temporal client, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from temporalio.client import Client

from api.metrics import ApiMetrics
from api.started_marks import StartedMarks
from offload.db import Pool
from offload.jobs import outbox
from offload.settings import Settings

log = logging.getLogger(__name__)

# An after-response task of a saved lead: `(pool, api.leads.LeadSaved) -> None`.
LeadTask = Callable[[Pool, Any], Awaitable[None]]

# After a start fails, the API leaves starts to the outbox relay for this long, so a
# Temporal outage costs one timeout, not one per request.
START_PAUSE_SECONDS = 5.0


@dataclass
class ApiContext:
    settings: Settings
    pool: Pool
    client: Client
    metrics: ApiMetrics
    # The outbox rows whose jobs this API started, to mark (many in one statement).
    marks: StartedMarks
    after_lead: dict[str, LeadTask] = field(default_factory=dict)
    starts_paused_until: float = 0.0
    # `offload api` without its worker: the workers' relays, woken at the commit, start the
    # jobs (eagerly, beside the worker that runs them), and the request path does no
    # Temporal work at all.
    leave_starts_to_relay: bool = False

    async def start_after_commit(self, kind: str, job: Any) -> bool:
        """Start a job just committed to the outbox; False when it is left to the relay.

        It never raises and never takes longer than `OFFLOAD_API_START_TIMEOUT_SECONDS`:
        the outbox row is already safe, and the relay starts whatever this could not.
        """
        if time.monotonic() < self.starts_paused_until:
            self.metrics.job_starts.labels(outcome="skipped").inc()
            return False
        try:
            async with asyncio.timeout(self.settings.api_start_timeout_seconds):
                await outbox.start(self.client, self.settings, kind, job)
        except Exception as err:
            self.starts_paused_until = time.monotonic() + START_PAUSE_SECONDS
            self.metrics.job_starts.labels(outcome="failed").inc()
            log.warning("job start failed (%s); the outbox relay will start it", type(err).__name__)
            return False
        self.metrics.job_starts.labels(outcome="started").inc()
        return True


async def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextParam = Annotated[ApiContext, Depends(get_context)]
