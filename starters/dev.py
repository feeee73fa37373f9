"""`offload dev`: the whole system on embedded services, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from temporalio.client import Client

from offload import queues
from offload.codec import start_codec_server
from offload.db import Pool, create_pool, migrate
from offload.settings import Settings
from offload.temporal import connect
from starters.api import api_service, api_url, check_api_port
from starters.console import CommandError
from starters.worker import stop_on_signals
from workers.main import build_services, build_workers, run_workers

if TYPE_CHECKING:
    from offload.dev.stack import DevStack

log = logging.getLogger(__name__)


def dev_stack(settings: Settings) -> DevStack:
    """The embedded services for `settings`, or a `CommandError` saying how to install them.

    Imported here, not at the top: the dev stack comes with the `dev` extra, and every other
    command works without it.
    """
    try:
        from offload.dev.stack import DevStack
    except ModuleNotFoundError as err:
        raise CommandError(
            f"this command runs the embedded dev stack, which needs the `dev` extra "
            f"(pip install 'offload[dev]'); missing: {err.name}"
        ) from None
    return DevStack(settings)


@asynccontextmanager
async def running_stack(settings: Settings) -> AsyncIterator[tuple[DevStack, Client, Pool]]:
    """Start the embedded services, migrate, connect; stop everything on the way out."""
    stack = dev_stack(settings)
    await stack.start()
    codec_server = None
    try:
        if settings.encryption_key is not None:
            codec_server = await start_codec_server(settings)
            print(f"codec     {settings.codec_server_url}  (the Web UI decrypts payloads with it)")
        pool = await create_pool(settings)
        try:
            for name in await migrate(pool):
                print(f"migrated  {name}")
            client = await connect(settings, serve_metrics=True)
            yield stack, client, pool
        finally:
            await pool.close()
    finally:
        if codec_server is not None:
            await codec_server.cleanup()
        await stack.stop()


async def dev_command(args: argparse.Namespace, settings: Settings) -> int:
    check_api_port(settings)
    stop = stop_on_signals()
    async with running_stack(settings) as (stack, client, pool):
        # The stack's settings: with the URL of the sample market feed it serves.
        settings = stack.settings
        workers = build_workers(client, settings, pool, list(queues.BY_KIND))
        print(f"worker    polling {', '.join(w.task_queue for w in workers)} (and the outbox)")
        print(f"api       {api_url(settings)}  (OpenAPI: {api_url(settings)}/docs)")
        print("ready: press Ctrl-C to stop everything")
        services = [*build_services(client, settings, pool), api_service(settings, pool, client)]
        await run_workers(workers, stop, services)
    print("stopped")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dev",
        help="run the whole system on embedded services",
        description="Start the Temporal dev server (Web UI on 8233), PostgreSQL and an SMTP sink "
        "with their data under OFFLOAD_DATA_DIR, migrate, and run the worker (with the outbox "
        "relay) and the HTTP API (OFFLOAD_API_PORT, 8000) until Ctrl-C. "
        "Services whose variables are set (TEMPORAL_ADDRESS, DATABASE_URL, SMTP_HOST) are used "
        "instead of starting them.",
    )
    parser.set_defaults(handler=dev_command)
