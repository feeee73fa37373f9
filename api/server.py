"""Run the API on uvicorn inside an asyncio program, until an event is set."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from offload.db import create_pool
from offload.settings import Settings
from offload.temporal import connect


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self.started_event = started

    # The program around it owns SIGINT/SIGTERM (`offload dev` stops the worker too).
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What start-up made (modules, the app, the pool, the Temporal client) lives as long
        # as the process: out of the collector's sight, a full collection no longer walks it
        # (one took 190 ms under load, stalling every request in flight).
        gc.collect()
        gc.freeze()
        if self.started and self.started_event is not None:
            self.started_event.set()


async def serve(
    app: FastAPI,
    settings: Settings,
    stop: asyncio.Event,
    *,
    port: int | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Serve `app` on `OFFLOAD_API_HOST:OFFLOAD_API_PORT` (or `port`) until `stop` is set.

    Shutdown lets requests in flight finish and drains the after-response tasks.
    """
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        access_log=False,
        # uvicorn's own handlers would bypass the process's PersonalDataFilter: propagate.
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
        # Whose X-Forwarded-For sets the client address (the rate limits count by it).
        proxy_headers=True,
        forwarded_allow_ips=settings.api_forwarded_allow_ips,
    )
    server = _Server(config, started)
    serving = asyncio.create_task(server.serve(), name="uvicorn")

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await serving
    finally:
        watcher.cancel()
    if not server.started:
        raise RuntimeError(f"the API could not start on {settings.api_host}:{config.port}")


async def serve_api(
    settings: Settings,
    stop: asyncio.Event,
    *,
    started: asyncio.Event | None = None,
    extend: Callable[[FastAPI], None] | None = None,
) -> None:
    """`offload api` in this process: the app on its own pool and a lazy Temporal client.

    Lazy: the API starts, and takes leads, while Temporal is down; the outbox relay starts
    their jobs later. With `OFFLOAD_API_WORKER` (the default) it hosts a workflow worker, so
    its starts are eager; without, it leaves each lead's start to the workers' relays, which
    the lead's commit wakes. `extend` adds to the app before it serves: a benchmark's extra
    route, a test's fault (they stay out of the app itself).
    """
    # The whole pool opens at start-up: a connection opened under load costs that request
    # a connect (and its neighbours the CPU for it).
    pool = await create_pool(
        settings, min_size=settings.api_pool_size, max_size=settings.api_pool_size
    )
    try:
        client = await connect(settings, lazy=True)
        app = create_app(
            settings,
            pool=pool,
            client=client,
            host_worker=settings.api_worker,
            leave_starts_to_relay=not settings.api_worker,
        )
        if extend is not None:
            extend(app)
        await serve(app, settings, stop, started=started)
    finally:
        await pool.close()
