"""`offload dlq list|show|redrive|discard`: inspect and act on the dead-letter queue.

The commands print what `offload.jobs.dead_letters` reads and changes, and map its errors
to exit codes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from offload import kinds
from offload.db import QUERIES
from offload.jobs.dead_letters import (
    STATUSES,
    check_ids,
    discard,
    find_dead_letter,
    list_dead_letters,
    redrivable,
    redrive,
)
from offload.models import DiscardRequest, RedriveRequest, redrive_workflow_id
from offload.settings import Settings
from offload.tables import table
from offload.temporal import connect
from starters.console import (
    CommandError,
    Commands,
    add_command,
    add_command_group,
    database,
    print_json,
)


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no dead-letter entries")
        return
    header = ("ID", "KIND", "STATUS", "FAILED AT", "ATTEMPTS", "ERROR", "WORKFLOW")
    lines = [
        (
            r["id"],
            r["kind"],
            r["status"],
            r["failed_at"].strftime("%Y-%m-%d %H:%M:%S"),
            str(r["attempts"]),
            r["error_type"],
            r["workflow_id"],
        )
        for r in rows
    ]
    for line in table(header, lines):
        print(line)
    print(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


async def list_command(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings, max_size=2) as pool:
        rows = await list_dead_letters(pool, args.kind, args.status)
    if args.json:
        print_json(rows)
    else:
        _table(rows)
    return 0


async def show_command(args: argparse.Namespace, settings: Settings) -> int:
    [entry_id] = check_ids([args.id])
    async with database(settings, max_size=2) as pool:
        entry = await find_dead_letter(pool, entry_id)
    if entry is None:
        raise CommandError(f"ID {entry_id} names no dead-letter entry")
    if args.json:
        print_json(entry)
        return 0
    for field in (
        "id",
        "kind",
        "status",
        "workflow_id",
        "run_id",
        "workflow_type",
        "error_type",
        "error_message",
        "attempts",
        "failed_at",
        "recorded_at",
        "redrive_workflow_id",
        "resolved_at",
    ):
        print(f"{field:20} {entry[field] if entry[field] is not None else '-'}")
    print("input")
    print(json.dumps(entry["input"], indent=2, sort_keys=True))
    return 0


def parse_rate(text: str) -> float:
    """`--rate`: starts per second, as `N/s` or `N` (a positive number, at most 10000)."""
    number = text.removesuffix("/s")
    try:
        rate = float(number)
    except ValueError:
        rate = 0.0
    if not 0 < rate <= 10_000:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate: give starts per second, like 50/s (at most 10000/s)"
        )
    return rate


async def redrive_command(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.ids) == (args.kind is not None):
        raise CommandError("give entry IDs or --kind K (not both)")
    if args.error_type is not None and args.kind is None:
        raise CommandError("--error-type goes with --kind K")
    request = RedriveRequest(
        ids=check_ids(args.ids), kind=args.kind, error_type=args.error_type, rate=args.rate
    )
    async with database(settings, max_size=1) as pool:
        entries = await redrivable(pool, request)
        if args.dry_run:
            _dry_run(request, entries, args.json)
            return 0
        total = len(entries)
        if total and not args.json:
            pace = (
                f" at {request.rate:g}/s, about {total / request.rate:.0f} s"
                if request.rate
                else ""
            )
            print(f"redriving {total} entr{'y' if total == 1 else 'ies'}{pace}", flush=True)

        async def progress() -> None:
            started = len(await pool.fetch(QUERIES.find_redriven_of, [e["id"] for e in entries]))
            if not args.json:
                print(f"started   {started} of {total}", flush=True)

        result = await redrive(await connect(settings), settings, request, progress)
    if args.json:
        print_json(result.model_dump(mode="json"))
    elif not result.redriven:
        print("nothing to redrive")
    else:
        for job in result.redriven:
            print(f"redriven  {job.entry_id} as {job.workflow_id}")
        if result.count > len(result.redriven):
            print(f"... and {result.count - len(result.redriven)} more")
        print(f"{result.count} job(s) redriven")
    return 0


def _dry_run(request: RedriveRequest, entries: list[dict[str, Any]], as_json: bool) -> None:
    """Print what a redrive would start now, and start nothing."""
    plan = [
        {
            "entry_id": e["id"],
            "workflow_type": e["workflow_type"],
            "workflow_id": redrive_workflow_id(e["workflow_id"]),
            "error_type": e["error_type"],
        }
        for e in entries
    ]
    if as_json:
        print_json(plan)
        return
    for line in plan:
        print(
            f"would start {line['workflow_type']} {line['workflow_id']} "
            f"(entry {line['entry_id']}, {line['error_type']})"
        )
    left = [i for i in request.ids if i not in {e["id"] for e in entries}]
    if left:
        print(f"not dead (would be refused): {', '.join(left)}")
    pace = f", about {len(plan) / request.rate:.0f} s at {request.rate:g}/s" if request.rate else ""
    print(f"dry run: {len(plan)} job(s) would start{pace}; nothing started")


async def discard_command(args: argparse.Namespace, settings: Settings) -> int:
    request = DiscardRequest(ids=check_ids(args.ids))
    result = await discard(await connect(settings), settings, request)
    if args.json:
        print_json(result.model_dump(mode="json"))
    else:
        for entry_id in result.discarded:
            print(f"discarded {entry_id}")
    return 0


def add_commands(commands: Commands) -> None:
    dlq = add_command_group(
        commands,
        "dlq",
        help="inspect, redrive and discard dead-lettered jobs",
        description="The dead-letter queue: jobs that ran out of retries or failed for good.",
    )

    parser = add_command(
        dlq, "list", list_command, help="list entries, newest failure first", with_json=True
    )
    parser.add_argument(
        "--kind", help=f"only entries of this job kind ({', '.join(kinds.names())})"
    )
    parser.add_argument("--status", choices=STATUSES, help="only entries in this status")

    parser = add_command(
        dlq, "show", show_command, help="show one entry, with its input and error", with_json=True
    )
    parser.add_argument("id", metavar="ID", help="entry id (dl-...)")

    parser = add_command(
        dlq,
        "redrive",
        redrive_command,
        help="start dead entries' jobs again",
        description="Start each entry's workflow again with its original input, under "
        "<workflow id>-redrive-<n>. An entry is redriven at most once.",
        with_json=True,
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="entry ids")
    parser.add_argument("--kind", help="every dead entry of this job kind")
    parser.add_argument("--error-type", metavar="T", help="with --kind: only entries failed by T")
    parser.add_argument(
        "--rate",
        type=parse_rate,
        metavar="N/s",
        help="at most N starts per second, so a recovering service is not flooded",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would start, and start nothing"
    )

    parser = add_command(
        dlq,
        "discard",
        discard_command,
        help="mark dead entries discarded (never redriven)",
        with_json=True,
    )
    parser.add_argument("ids", nargs="+", metavar="ID", help="entry ids")
