"""`offload report`: queue a leads report, or show a report's progress and result."""

from __future__ import annotations

import argparse
import asyncio

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from offload.jobs.reports import enqueue_report, new_report_job
from offload.jobs.start import workflow_ui_url
from offload.models import ReportProgress, ReportResult, report_workflow_id
from offload.settings import Settings
from offload.temporal import connect
from starters.console import CommandError, database, print_json
from starters.control import add_start_arguments, start_options
from starters.db import parse_day
from workflows.reports import GenerateReportWorkflow


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
    job = new_report_job(
        settings,
        report_id=args.report_id,
        user_id=args.user_id,
        start=parse_day(args.start, "--start"),
        end=parse_day(args.end, "--end"),
    )
    options = start_options(args)
    async with database(settings, max_size=1) as pool:
        client = await connect(settings)
        handle = await enqueue_report(client, settings, pool, job, options)
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
    job_id = report_workflow_id(args.id)
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
