"""`offload api`: serve the HTTP API on uvicorn until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio

from temporalio.client import Client

from api.app import create_app
from api.server import serve, serve_api
from offload.db import Pool
from offload.net import require_free_port
from offload.settings import Settings
from starters.worker import stop_on_signals
from workers.main import Service


def api_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def check_api_port(settings: Settings) -> None:
    """Raise `PortInUseError` naming `OFFLOAD_API_PORT` when it is taken."""
    require_free_port(settings.api_port, "API", "OFFLOAD_API_PORT", host=settings.api_host)


def api_service(
    settings: Settings, pool: Pool, client: Client, started: asyncio.Event | None = None
) -> Service:
    """The API as a service of a process that runs other things too (`offload dev`)."""
    app = create_app(settings, pool=pool, client=client)

    async def run(stop: asyncio.Event) -> None:
        await serve(app, settings, stop, started=started)

    return run


async def api_command(args: argparse.Namespace, settings: Settings) -> int:
    updates = {"api_host": args.host, "api_port": args.port}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    check_api_port(settings)
    stop = stop_on_signals()
    started = asyncio.Event()
    serving = asyncio.create_task(serve_api(settings, stop, started=started))
    ready = asyncio.create_task(started.wait())
    await asyncio.wait([serving, ready], return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()  # when serving failed to start
    if started.is_set():
        print(f"api       {api_url(settings)}  (OpenAPI: {api_url(settings)}/docs)")
    await serving
    print("api stopped")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "api",
        help="serve the HTTP API",
        description="Serve the HTTP API (POST /leads, /reports, /healthz, /metrics) on uvicorn "
        "at OFFLOAD_API_HOST:OFFLOAD_API_PORT until SIGTERM or SIGINT; requests in flight and "
        "after-response tasks finish first, then its workflow worker drains. It runs a workflow "
        "worker of its own (OFFLOAD_API_WORKER=1, the default), so its job starts are eager "
        "and a lead's email goes out from this process; with OFFLOAD_API_WORKER=0 it starts no "
        "lead's job itself and the commit wakes the workers' outbox relays. It starts, and "
        "takes leads, while "
        "Temporal is down: the worker's outbox relay starts their jobs once Temporal is back.",
    )
    parser.add_argument("--host", help="address to listen on (default OFFLOAD_API_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default OFFLOAD_API_PORT)")
    parser.set_defaults(handler=api_command)
