"""`offload worker`: poll Offload's task queues until SIGTERM or SIGINT, then drain."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from offload import queues
from offload.db import create_pool
from offload.settings import Settings
from offload.temporal import connect
from starters.console import CommandError
from workers.main import build_services, build_workers, run_workers

log = logging.getLogger(__name__)


def parse_queue_kinds(text: str | None) -> list[str]:
    """`email,reports` -> the kinds; none given -> every queue."""
    if not text:
        return list(queues.BY_KIND)
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in queues.BY_KIND]
    if unknown or not kinds:
        raise CommandError(
            f"--queues: unknown queue kind(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(queues.BY_KIND)}"
        )
    return kinds


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    kinds = parse_queue_kinds(args.queues)
    if args.grace is not None:
        settings = settings.model_copy(update={"worker_grace_seconds": args.grace})
    stop = stop_on_signals()
    client = await connect(settings, serve_metrics=True)
    pool = await create_pool(settings)
    try:
        workers = build_workers(client, settings, pool, kinds)
        names = ", ".join(w.task_queue for w in workers)
        print(f"worker polling {names} (grace period {settings.worker_grace_seconds:g}s)")
        await run_workers(workers, stop, build_services(client, settings, pool))
    finally:
        await pool.close()
    print("worker stopped")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "worker",
        help="run a worker",
        description="Poll Offload's task queues. SIGTERM or SIGINT stops polling, lets running "
        "activities finish within the grace period, and exits 0.",
    )
    parser.add_argument(
        "--queues",
        help=f"comma-separated queue kinds to poll ({', '.join(queues.BY_KIND)}); default all",
    )
    parser.add_argument(
        "--grace",
        type=float,
        help="seconds running activities get to finish on shutdown "
        "(default OFFLOAD_WORKER_GRACE_SECONDS)",
    )
    parser.set_defaults(handler=worker_command)
