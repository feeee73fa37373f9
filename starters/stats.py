"""`offload stats`: queue depth, jobs by status, dead letters, schedules and latency at a glance.

`offload.jobs.stats` collects and renders them; this command prints them once, or again
every `--interval` seconds with `--watch`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

from offload.jobs.stats import collect_stats, render_table
from offload.settings import Settings
from offload.temporal import connect
from starters.console import CommandError, print_json
from starters.worker import stop_on_signals


async def stats_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.interval <= 0:
        raise CommandError("--interval: must be more than 0 seconds")
    metrics_url = args.metrics_url
    if metrics_url is None:
        metrics_url = (
            f"http://{settings.metrics_address}/metrics" if settings.metrics_address else ""
        )
    client = await connect(settings)
    stop = stop_on_signals() if args.watch else asyncio.Event()
    while True:
        stats = await collect_stats(client, settings, metrics_url)
        if args.json and args.watch:
            # One line per refresh, so a script can read the stream line by line.
            print(json.dumps(stats.model_dump(mode="json"), sort_keys=True), flush=True)
        elif args.json:
            print_json(stats.model_dump(mode="json"))
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(render_table(stats), flush=True)
        if not args.watch:
            return 0
        # Ctrl-C or SIGTERM ends the watch as a normal exit, between two refreshes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.interval)
        if stop.is_set():
            return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "stats",
        help="queue depth, jobs by status, dead letters, schedules and latency",
        description="How deep is each task queue, how long do jobs wait and run, what failed. "
        "Reads Temporal and the worker's metrics endpoint (OFFLOAD_METRICS_ADDRESS).",
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON (with --watch, one line per refresh)"
    )
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes with --watch"
    )
    parser.add_argument(
        "--metrics-url",
        help="the worker's Prometheus endpoint (default http://OFFLOAD_METRICS_ADDRESS/metrics)",
    )
    parser.set_defaults(handler=stats_command)
