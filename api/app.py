"""The FastAPI app: `create_app(settings)` wires routes, errors, limits and resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api import errors, health, leads, reports
from api.after_response import AfterResponseRunner
from api.context import ApiContext, LeadTask
from api.limits import RequestLimits
from api.metrics import ApiMetrics
from offload.db import Pool, create_pool
from offload.settings import Settings
from offload.temporal import connect


def create_app(
    settings: Settings,
    *,
    pool: Pool | None = None,
    client: Client | None = None,
    after_lead: dict[str, LeadTask] | None = None,
) -> FastAPI:
    """The API for `settings`.

    A pool or client passed in is shared (as `offload dev` does) and left open; otherwise
    the app opens its own at startup and closes them at shutdown. The Temporal client
    connects lazily, so the API starts, and takes leads, while Temporal is down.
    `after_lead` replaces the after-response tasks of a saved lead (tests use it).
    """
    metrics = ApiMetrics()
    runner = AfterResponseRunner(
        metrics,
        timeout=settings.after_response_timeout_seconds,
        max_tasks=settings.after_response_max_tasks,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_pool = await create_pool(settings, max_size=20) if pool is None else None
        try:
            app.state.context = ApiContext(
                settings=settings,
                pool=pool or own_pool,  # type: ignore[arg-type]
                client=client or await connect(settings, lazy=True),
                metrics=metrics,
                after_response=runner,
                after_lead=dict(leads.AFTER_LEAD if after_lead is None else after_lead),
            )
            yield
            await runner.drain(settings.after_response_timeout_seconds)
        finally:
            if own_pool is not None:
                await own_pool.close()

    app = FastAPI(
        title="Offload",
        version="0.1.0",
        summary="Leads in through a transactional outbox; report jobs; health and metrics.",
        lifespan=lifespan,
    )
    app.state.after_response = runner
    errors.install(app)
    app.add_middleware(RequestLimits, max_body_bytes=settings.api_max_body_bytes, metrics=metrics)
    app.include_router(leads.router)
    app.include_router(reports.router)
    app.include_router(health.router)
    return app
