"""`offload db ...`: database migrations and demo data."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime

from offload.db import migrate
from offload.seed import seed
from offload.settings import Settings
from starters.console import CommandError, Commands, add_command, add_command_group, database


async def migrate_command(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings, max_size=2) as pool:
        applied = await migrate(pool)
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0


def parse_day(text: str, field: str) -> date:
    """`YYYY-MM-DD`, or a CommandError naming `field`."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{field}: {text!r} is not a date like 2026-01-31") from None


async def seed_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.leads < 0 or args.agents < 1:
        raise CommandError("--leads must be >= 0 and --agents >= 1")
    end = parse_day(args.end, "--end") if args.end else datetime.now(UTC).date()
    async with database(settings, max_size=2) as pool:
        await migrate(pool)
        began = time.monotonic()
        done = await seed(pool, leads=args.leads, agents=args.agents, seed=args.seed, end=end)
    print(
        f"seeded {done.leads} leads for {done.agents} agents "
        f"({done.first_day} to {done.last_day}) in {time.monotonic() - began:.1f}s"
    )
    return 0


def add_commands(commands: Commands) -> None:
    db = add_command_group(commands, "db", help="database tasks", description="Database tasks.")
    add_command(
        db,
        "migrate",
        migrate_command,
        help="apply pending migrations",
        description="Apply pending migrations, once each.",
    )
    parser = add_command(
        db,
        "seed",
        seed_command,
        help="load realistic agents and leads (COPY)",
        description="Add agents agent1@example.com... (reused if present, digest subscribed) "
        "and leads spread over the year before --end. The same --seed and --end give the "
        "same rows.",
    )
    parser.add_argument("--leads", type=int, default=10_000, help="leads to add (10000)")
    parser.add_argument("--agents", type=int, default=10, help="agents to spread them over (10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--end", help="the day after the last lead, YYYY-MM-DD (today, UTC)")
