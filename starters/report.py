"""`offload report`: queue a leads report, or show a report's progress and result."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from offload.db import QUERIES, Pool, create_pool
from offload.models import LAST_REPORT_DAY, ReportJob, ReportProgress, ReportResult
from offload.settings import Settings
from offload.temporal import connect
from starters.console import CommandError, print_json
from starters.db import parse_day
from starters.jobs import start_job, workflow_ui_url
from workflows.reports import GenerateReportWorkflow


def report_job(
    settings: Settings, *, report_id: str, user_id: int, start: str, end: str
) -> ReportJob:
    """The job for these inputs, with the tuning from settings.

    Raises:
        CommandError: a malformed date, end before start, a day past `LAST_REPORT_DAY`,
            or a range over the maximum.
    """
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if last < first:
        raise CommandError(f"--end {last} is before --start {first}")
    if last > LAST_REPORT_DAY:
        raise CommandError(
            f"--end: {last} is after {LAST_REPORT_DAY}, the last day a report can cover"
        )
    days = (last - first).days + 1
    if days > settings.report_max_days:
        raise CommandError(
            f"--start/--end span {days} days; at most {settings.report_max_days} "
            "(OFFLOAD_REPORT_MAX_DAYS)"
        )
    if not report_id or user_id < 1:
        raise CommandError("--report-id must be non-empty and --user-id positive")
    try:
        return new_report_job(settings, report_id=report_id, user_id=user_id, start=first, end=last)
    except ValueError as err:
        raise CommandError(f"--report-id: {err}") from None


def new_report_job(
    settings: Settings, *, report_id: str, user_id: int, start: date, end: date
) -> ReportJob:
    """The job for checked inputs, with the tuning from settings (the CLI and the API)."""
    return ReportJob(
        report_id=report_id,
        user_id=user_id,
        start=start,
        end=end,
        retry=settings.retry,
        max_parallel_chunks=settings.report_max_parallel_chunks,
        heartbeat_timeout_seconds=settings.report_heartbeat_timeout_seconds,
        chunks_per_run=settings.report_chunks_per_run,
    )


class ReportIdTakenError(Exception):
    """The report id names a report with other parameters (its own are attached)."""

    def __init__(self, report_id: str, user_id: int, start: date, end: date) -> None:
        super().__init__(
            f"report {report_id!r} exists with user_id {user_id}, start {start}, end {end}"
        )
        self.report_id, self.user_id, self.start, self.end = report_id, user_id, start, end


async def claim_report_id(pool: Pool, job: ReportJob) -> None:
    """Record `job`'s parameters under its report id, before it starts.

    The same id with the same parameters is the same report (queueing it again is a
    no-op); with other parameters it is refused, rather than answered with the other report.

    Raises:
        ReportIdTakenError: the id is a report of another agent or other days.
    """
    args = (job.report_id, job.user_id, job.start, job.end, job.workflow_id)
    row = await pool.fetchrow(QUERIES.claim_report, *args)
    if row is None:
        row = await pool.fetchrow(QUERIES.claim_report, *args)
    assert row is not None
    existing = (row["user_id"], row["start_day"], row["end_day"])
    if existing != (job.user_id, job.start, job.end):
        raise ReportIdTakenError(job.report_id, *existing)


async def enqueue_report(
    client: Client, settings: Settings, pool: Pool, job: ReportJob
) -> WorkflowHandle[GenerateReportWorkflow, ReportResult]:
    """Queue `job` once its agent is known; the same report id queued twice runs once.

    Raises:
        CommandError: the agent `job.user_id` does not exist, or the report id is taken by
            a report with other parameters.
    """
    if await pool.fetchrow(QUERIES.find_agent, job.user_id) is None:
        raise CommandError(f"--user-id: no agent with id {job.user_id}")
    try:
        await claim_report_id(pool, job)
    except ReportIdTakenError as taken:
        raise CommandError(
            f"--report-id: {job.report_id!r} is a report with --user-id {taken.user_id} "
            f"--start {taken.start} --end {taken.end}; give another id or those parameters"
        ) from None
    return await start_job(
        client, settings, GenerateReportWorkflow.run, job, workflow_id=job.workflow_id
    )


def describe_progress(progress: ReportProgress) -> str:
    eta = f", eta {progress.eta:%H:%M:%S}" if progress.eta and progress.status != "done" else ""
    return (
        f"{progress.status}: {progress.chunks_done}/{progress.chunks_total} chunks, "
        f"{progress.rows_read} rows read{eta}"
    )


def print_result(result: ReportResult, as_json: bool) -> None:
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    print(f"done: {result.total_leads} leads, average score {result.average_score}, "
          f"top source {result.top_source}")  # fmt: skip
    print(f"file      {result.file}")


async def report_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.report_command == "status":
        return await status_command(args, settings)
    missing = [
        flag
        for flag, value in (
            ("--report-id", args.report_id),
            ("--user-id", args.user_id),
            ("--start", args.start),
            ("--end", args.end),
        )
        if value is None
    ]
    if missing:
        raise CommandError(f"missing {', '.join(missing)}")
    job = report_job(
        settings, report_id=args.report_id, user_id=args.user_id, start=args.start, end=args.end
    )
    pool = await create_pool(settings, max_size=1)
    try:
        client = await connect(settings)
        handle = await enqueue_report(client, settings, pool, job)
    finally:
        await pool.close()
    print(f"queued {handle.id}")
    print(f"  {workflow_ui_url(settings, handle.id)}")
    if args.wait:
        result = await follow(handle)
        print_result(result, args.json)
    return 0


async def follow(handle: WorkflowHandle[GenerateReportWorkflow, ReportResult]) -> ReportResult:
    """Print the report's progress whenever it changes, until its result."""
    result = asyncio.ensure_future(handle.result())
    shown = ""
    while not result.done():
        try:
            line = describe_progress(await handle.query(GenerateReportWorkflow.progress))
        except RPCError:
            line = shown  # no workflow task processed yet
        if line != shown:
            print(line, flush=True)
            shown = line
        await asyncio.wait([result], timeout=0.5)
    return await result


async def status_command(args: argparse.Namespace, settings: Settings) -> int:
    client = await connect(settings)
    job_id = f"report-{args.id}"
    handle: WorkflowHandle[GenerateReportWorkflow, ReportResult] = client.get_workflow_handle(
        job_id, result_type=ReportResult
    )
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CommandError(f"no report {args.id!r}") from None
        raise
    if description.status == WorkflowExecutionStatus.COMPLETED:
        print_result(await handle.result(), args.json)
        return 0
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name if description.status else "UNKNOWN"
        print(f"{status.lower()}: see {workflow_ui_url(settings, job_id)}")
        return 1
    progress = await handle.query(GenerateReportWorkflow.progress)
    if args.json:
        print_json(progress.model_dump(mode="json"))
    else:
        print(describe_progress(progress))
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report",
        help="queue a leads report, or show one's status",
        description="Queue a leads report for one agent over --start..--end (UTC days, "
        "inclusive), or `offload report status R` for its progress and result.",
    )
    parser.add_argument("--report-id", help="the report's id; the same id runs once")
    parser.add_argument("--user-id", type=int, help="the agent the report is for")
    parser.add_argument("--start", help="first day, YYYY-MM-DD")
    parser.add_argument("--end", help="last day, YYYY-MM-DD (inclusive)")
    parser.add_argument("--wait", action="store_true", help="show progress, then the result")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="report_command", metavar="COMMAND")
    status = sub.add_parser("status", help="a report's progress, or its result and file")
    status.add_argument("id", help="the report id")
    status.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=report_command)
