"""`offload schedules apply|list`: the five Temporal Schedules that replace the old crons.

`apply` makes the server's schedules match the ones declared in `offload.jobs.schedules` and
says, for each, whether it was created, updated or already as declared; running it twice
changes nothing.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from offload.jobs.schedules import apply_schedules, list_schedules
from offload.settings import Settings
from offload.temporal import connect
from starters.console import Commands, add_command, add_command_group, print_json


def describe_behind(row: dict[str, Any]) -> str:
    """The windows due and not done yet, and any the server gave up on, in words."""
    due = row["running"] + row["buffered"]
    words = f"{due} window{'s' if due != 1 else ''}" if due else "none"
    if due:
        words += f" ({row['running']} running, {row['buffered']} waiting)"
    lost = row["missed"] + row["skipped"] + row["dropped"]
    if lost:
        words += (
            f"; lost {lost} (missed the catch-up window {row['missed']}, skipped "
            f"{row['skipped']}, buffer full {row['dropped']}): backfill them"
        )
    return words


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M %Z")


async def apply_command(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect(settings)
    outcomes = await apply_schedules(client, settings, prune=args.prune)
    if args.json:
        print_json([{"id": sid, "outcome": outcome} for sid, outcome in outcomes])
    else:
        for sid, outcome in outcomes:
            print(f"{outcome:<10} {sid}")
    return 0


async def list_command(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect(settings)
    found = await list_schedules(client, settings)
    if args.json:
        print_json(found)
        return 0
    for row in found:
        if not row["exists"]:
            print(f"{row['id']}: not created (run `offload schedules apply`)")
            continue
        state = "paused" if row["paused"] else "active"
        print(f"{row['id']}: {state}{' (' + row['note'] + ')' if row['note'] else ''}")
        print(f"  next  {', '.join(_time(t) for t in row['next_runs']) or '-'}")
        print(f"  behind  {describe_behind(row)}")
        last = row["last"]
        if last is None:
            print("  last  never ran")
        else:
            print(f"  last  {_time(last['scheduled_at'])} {last['status']} {last['workflow_id']}")
    return 0


def add_commands(commands: Commands) -> None:
    schedules = add_command_group(
        commands,
        "schedules",
        help="create, update and list the Temporal Schedules",
        description="The hourly and daily jobs as Temporal Schedules "
        "(manage them with `temporal schedule ...` too).",
    )
    apply = add_command(
        schedules,
        "apply",
        apply_command,
        help="create or update every schedule; print created/updated/unchanged",
        description="Make the server's schedules match the declared ones. Idempotent.",
        with_json=True,
    )
    apply.add_argument(
        "--prune", action="store_true", help="delete Offload schedules no longer declared"
    )
    add_command(
        schedules,
        "list",
        list_command,
        help="each schedule: paused or not, next runs, windows behind, last result",
        with_json=True,
    )
