"""`offload jobs list|show|cancel`, `offload pause`, `offload resume`: acting on jobs.

The commands are a thin shell over `offload.jobs.control` and `offload.jobs.pause`, which
the HTTP API uses too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from offload.jobs.control import (
    OPEN,
    STATUSES,
    JobInfo,
    JobQuery,
    cancel_job,
    cancel_matching,
    count_jobs,
    list_jobs,
    show_job,
)
from offload.jobs.errors import JobInputError
from offload.jobs.pause import pause_kind, paused_kinds, resume_kind
from offload.jobs.start import StartOptions, parse_duration, parse_time
from offload.kinds import HIGHEST_PRIORITY, LOWEST_PRIORITY, names, pausable_kinds
from offload.settings import Settings
from offload.temporal import connect
from starters.console import (
    CommandError,
    Commands,
    add_command,
    add_command_group,
    database,
    print_json,
)


def add_start_arguments(parser: argparse.ArgumentParser) -> None:
    """`--delay`, `--at` and `--priority`, for every command that queues a job."""
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--delay", help="start it this much later (90s, 10m, 2h, 1d)")
    when.add_argument("--at", help="start it at this time (2026-12-24T09:00:00Z)")
    parser.add_argument(
        "--priority",
        type=int,
        choices=range(HIGHEST_PRIORITY, LOWEST_PRIORITY + 1),
        metavar=f"{HIGHEST_PRIORITY}..{LOWEST_PRIORITY}",
        help=f"{HIGHEST_PRIORITY} runs first when a queue has a backlog (default: the kind's)",
    )


def start_options(args: argparse.Namespace) -> StartOptions:
    """The `StartOptions` of `add_start_arguments`; bad values are a CommandError naming them."""
    options = StartOptions(
        delay=parse_duration(args.delay, "delay") if args.delay else None,
        at=parse_time(args.at, "at") if args.at else None,
        priority=args.priority,
    )
    if options.at is not None and options.at <= datetime.now(UTC):
        raise CommandError(f"--at: {args.at} is in the past")
    return options


def _query(args: argparse.Namespace) -> JobQuery:
    return JobQuery(
        kind=args.kind,
        status=args.status,
        since=parse_duration(args.since, "since") if getattr(args, "since", None) else None,
        limit=getattr(args, "limit", 50),
    )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _table(jobs: list[JobInfo]) -> None:
    if not jobs:
        print("no jobs")
        return
    header = ("ID", "KIND", "STATUS", "PRIORITY", "ATTEMPTS", "STARTED", "CLOSED")
    rows = [
        (
            job.id,
            job.kind,
            job.status if job.status != "scheduled" else f"scheduled {_when(job.scheduled_for)}",
            str(job.priority),
            str(job.attempts),
            _when(job.started_at),
            _when(job.closed_at),
        )
        for job in jobs
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(jobs)} job{'' if len(jobs) == 1 else 's'}")


async def list_command(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect(settings)
    jobs = await list_jobs(client, settings, _query(args), datetime.now(UTC))
    if args.json:
        print_json([job.model_dump(mode="json") for job in jobs])
    else:
        _table(jobs)
    return 0


async def show_command(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect(settings)
    job = await show_job(client, settings, args.id, datetime.now(UTC))
    if job is None:
        raise CommandError(f"ID {args.id!r} names no Offload job")
    if args.json:
        print_json(job.model_dump(mode="json"))
        return 0
    for field, value in job.model_dump().items():
        shown = _when(value) if isinstance(value, datetime) or field.endswith("_at") else value
        print(f"{field:14} {shown if shown is not None else '-'}")
    return 0


def confirm_bulk_cancel(count: int, kind: str) -> bool:
    """Ask on a terminal; elsewhere refuse, saying how many `--yes` would cancel."""
    if not sys.stdin.isatty():
        raise CommandError(f"would cancel {count} {kind} job(s); add --yes to do it")
    answer = input(f"cancel {count} {kind} job(s)? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def cancel_command(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.ids) == (args.kind is not None):
        raise CommandError("give job IDs or --kind K (not both)")
    client = await connect(settings)
    if args.ids:
        ids = list(dict.fromkeys(args.ids))
        reason = args.reason or "offload jobs cancel"
        outcomes = [await cancel_job(client, settings, job_id, reason) for job_id in ids]
        if args.json:
            print_json([outcome.model_dump() for outcome in outcomes])
        for outcome in outcomes if not args.json else []:
            print(f"{outcome.id}  {outcome.outcome}")
        return 0 if all(o.outcome == "cancel requested" for o in outcomes) else 1
    now = datetime.now(UTC)
    query = JobQuery(kind=args.kind, status=args.status or OPEN)
    count = await count_jobs(client, settings, query, now)
    if count == 0:
        print(f"no {query.status} {args.kind} jobs to cancel")
        return 0
    if not args.yes and not confirm_bulk_cancel(count, args.kind):
        print("nothing cancelled")
        return 0
    result = await cancel_matching(
        client, settings, query, now, args.reason or "offload jobs cancel --kind"
    )
    if args.json:
        print_json(result.model_dump())
    else:
        print(f"cancel requested for {result.done} of {result.total} {args.kind} job(s)")
        if result.failed:
            print(f"{result.failed} could not be cancelled (closed meanwhile?)")
    return 0


@contextmanager
def _kind_argument() -> Iterator[None]:
    """A bad kind is the KIND argument's fault here: it is not a --kind option."""
    try:
        yield
    except JobInputError as err:
        raise CommandError(f"KIND: {err}") from None


async def pause_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.list == (args.kind is not None):
        raise CommandError("give a KIND to pause, or --list")
    async with database(settings, max_size=2) as pool:
        if args.list:
            found = await paused_kinds(pool)
            if args.json:
                print_json([paused.model_dump(mode="json") for paused in found])
            elif not found:
                print("no kind is paused")
            for paused in found if not args.json else []:
                reason = f"  {paused.reason}" if paused.reason else ""
                print(f"{paused.kind}  paused since {_when(paused.paused_at)} UTC{reason}")
            return 0
        with _kind_argument():
            result = await pause_kind(pool, args.kind, args.reason or "")
    if args.json:
        print_json(result.model_dump(mode="json"))
    elif result.changed:
        print(f"paused {args.kind}: its jobs make no attempt until `offload resume {args.kind}`")
    else:
        print(f"{args.kind} was paused already (since {_when(result.paused_at)} UTC)")
    return 0


async def resume_command(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect(settings)
    async with database(settings, max_size=2) as pool:
        with _kind_argument():
            result = await resume_kind(client, settings, pool, args.kind)
    if args.json:
        print_json(result.model_dump(mode="json"))
    else:
        state = "resumed" if result.changed else "was not paused;"
        print(f"{state} {args.kind}: told {result.signalled} open job(s) to carry on")
    return 0


def add_commands(commands: Commands) -> None:
    jobs = add_command_group(
        commands,
        "jobs",
        help="list, show and cancel jobs",
        description="Jobs from Temporal visibility: kind, status, priority, attempts, times.",
    )

    parser = add_command(jobs, "list", list_command, help="list jobs, newest first", with_json=True)
    parser.add_argument("--kind", choices=names(), help="only jobs of this kind")
    parser.add_argument("--status", choices=list(STATUSES), help="only jobs in this status")
    parser.add_argument("--since", help="only jobs started within this long (90s, 10m, 2h, 1d)")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (50)")

    parser = add_command(
        jobs, "show", show_command, help="one job, with its Web UI link", with_json=True
    )
    parser.add_argument("id", metavar="ID", help="workflow id (as `offload jobs list` prints)")

    parser = add_command(
        jobs,
        "cancel",
        cancel_command,
        help="cancel jobs by id, or every open job of a kind",
        description="A cancelled job ends Canceled; a send in progress finishes first, and "
        "nothing is dead-lettered. --kind cancels with one Temporal batch operation.",
        with_json=True,
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="workflow ids")
    parser.add_argument("--kind", choices=names(), help="every open job of this kind")
    parser.add_argument(
        "--status",
        choices=["running", "scheduled"],
        help="with --kind: only jobs already running, or only those waiting for their time "
        "(default: both)",
    )
    parser.add_argument("--yes", action="store_true", help="with --kind: do not ask first")
    parser.add_argument("--reason", help="why (the Web UI shows it)")

    parser = add_command(
        commands,
        "pause",
        pause_command,
        help="pause a kind of job (--list: the paused kinds)",
        description="Its jobs make no attempt, spend no retry and are not dead-lettered "
        "until `offload resume KIND`; then they carry on where they were. "
        f"Pausable kinds: {', '.join(pausable_kinds())}.",
        with_json=True,
    )
    parser.add_argument("kind", nargs="?", metavar="KIND", help="the kind to pause")
    parser.add_argument("--reason", help="why (shown by --list)")
    parser.add_argument("--list", action="store_true", help="list the paused kinds")

    parser = add_command(
        commands, "resume", resume_command, help="resume a paused kind of job", with_json=True
    )
    parser.add_argument("kind", metavar="KIND", help="the kind to resume")
