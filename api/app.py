"""The FastAPI app: `create_app(settings)` wires routes, errors, limits and resources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api import dead_letter_page, errors, health, jobs, leads, reports
from api.after_response import AfterResponseRunner
from api.context import ApiContext, LeadTask
from api.limits import RequestLimits
from api.metrics import ApiMetrics
from api.rate_limits import RateLimits
from api.started_marks import StartedMarks
from api.worker import ApiWorker
from offload import tracing
from offload.db import Pool
from offload.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    pool: Pool,
    client: Client,
    *,
    after_lead: dict[str, LeadTask] | None = None,
    host_worker: bool = False,
    leave_starts_to_relay: bool = False,
) -> FastAPI:
    """The API for `settings`, on a pool and a Temporal client that its caller owns.

    Connect the client lazily (`connect(settings, lazy=True)`), so that the API starts, and
    takes leads, while Temporal is down. `after_lead` replaces the after-response tasks of a
    saved lead (tests use it). With `host_worker` (`offload api`, `OFFLOAD_API_WORKER`) the
    app runs a workflow worker of its own from start-up to shutdown (`api.worker`), and its
    starts are eager; without, it starts jobs on `client` (eager only if a worker of that
    client polls the workflow queue, as in `offload dev`). With `leave_starts_to_relay`
    (`offload api` with `OFFLOAD_API_WORKER=0`) it starts no lead's job itself: the lead's
    transaction wakes the workers' outbox relays, which start it at the commit.
    """
    metrics = ApiMetrics()
    runner = AfterResponseRunner(
        metrics,
        timeout=settings.after_response_timeout_seconds,
        max_tasks=settings.after_response_max_tasks,
    )
    marks = StartedMarks(pool, metrics, timeout=settings.after_response_timeout_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = app.state.context = ApiContext(
            settings=settings,
            pool=pool,
            client=client,
            metrics=metrics,
            marks=marks,
            after_lead=dict(leads.AFTER_LEAD if after_lead is None else after_lead),
            leave_starts_to_relay=leave_starts_to_relay,
        )
        stop_worker = asyncio.Event()
        worker = None
        if host_worker:
            worker = asyncio.create_task(ApiWorker(context).run(stop_worker), name="api worker")
            worker.add_done_callback(_report_worker_failure)
        yield
        # Requests in flight have finished; give their after-response tasks (the starts among
        # them) time to finish, write the marks of those starts, then let the worker finish
        # the jobs it was handed.
        await runner.drain(settings.after_response_timeout_seconds)
        await marks.close()
        if worker is not None:
            stop_worker.set()
            await worker

    app = FastAPI(
        title="Offload",
        version="0.1.0",
        summary="Leads in through a transactional outbox; report jobs; health and metrics.",
        lifespan=lifespan,
    )
    # Read by the `after_response` dependency of each route.
    app.state.after_response = runner
    app.state.rate_limits = RateLimits(settings, metrics)
    errors.install(app)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.api_max_body_bytes,
        metrics=metrics,
        router=app.router,
    )
    app.include_router(leads.router)
    app.include_router(reports.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(dead_letter_page.router)
    tracing.instrument_api(app)
    return app


def _report_worker_failure(task: asyncio.Task[None]) -> None:
    # At once, not only at shutdown: the API goes on serving, its starts no longer eager.
    if not task.cancelled() and task.exception() is not None:
        # exc_info, so the log's PersonalDataFilter shows the error's types, not its message.
        log.error("the API's workflow worker stopped", exc_info=task.exception())
