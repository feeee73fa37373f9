"""`offload report`: queue a leads report, or show a report's progress and result."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from offload.db import QUERIES, Pool, create_pool
from offload.models import ReportJob, ReportProgress, ReportResult
from offload.settings import Settings
from offload.temporal import connect
from starters.console import CommandError, print_json
from starters.control import add_start_arguments, start_options
from starters.db import parse_day
from starters.jobs import StartOptions, start_job, workflow_ui_url
from workflows.reports import GenerateReportWorkflow


def report_job(
    settings: Settings, *, report_id: str, user_id: int, start: str, end: str
) -> ReportJob:
    """The job for these inputs, with the tuning from settings.

    Raises:
        CommandError: a malformed date, end before start, or a range over the maximum.
    """
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if last < first:
        raise CommandError(f"--end {last} is before --start {first}")
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


async def enqueue_report(
    client: Client,
    settings: Settings,
    pool: Pool,
    job: ReportJob,
    options: StartOptions | None = None,
) -> WorkflowHandle[GenerateReportWorkflow, ReportResult]:
    """Queue `job` (now, or later per `options`) once its agent is known.

    The same report id queued twice runs once.

    Raises:
        CommandError: the agent `job.user_id` does not exist.
    """
    if await pool.fetchrow(QUERIES.find_agent, job.user_id) is None:
        raise CommandError(f"--user-id: no agent with id {job.user_id}")
    return await start_job(
        client,
        settings,
        GenerateReportWorkflow.run,
        job,
        workflow_id=job.workflow_id,
        kind="report",
        options=options,
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
    options = start_options(args)
    pool = await create_pool(settings, max_size=1)
    try:
        client = await connect(settings)
        handle = await enqueue_report(client, settings, pool, job, options)
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
    add_start_arguments(parser)
    sub = parser.add_subparsers(dest="report_command", metavar="COMMAND")
    status = sub.add_parser("status", help="a report's progress, or its result and file")
    status.add_argument("id", help="the report id")
    status.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=report_command)
