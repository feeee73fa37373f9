"""Report jobs: build a `ReportJob` from checked inputs and queue it once its agent is known."""

from __future__ import annotations

from datetime import date

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle

from offload.db import QUERIES, Pool
from offload.jobs.errors import ConflictError, JobInputError, NotFoundError
from offload.jobs.start import StartOptions, start_job
from offload.models import LAST_REPORT_DAY, ReportJob, ReportResult, ReportTuning
from offload.settings import Settings
from workflows.reports import GenerateReportWorkflow


def new_report_job(
    settings: Settings, *, report_id: str, user_id: int, start: date, end: date
) -> ReportJob:
    """The job for these inputs, with the tuning from settings (the CLI and the API).

    Raises:
        JobInputError: end before start, a day after `LAST_REPORT_DAY`, a range over
            `OFFLOAD_REPORT_MAX_DAYS`, a malformed
            report id or a user id below 1; `field` names the input.
    """
    if end < start:
        raise JobInputError(f"{end} is before start {start}", field="end")
    if end > LAST_REPORT_DAY:
        raise JobInputError(
            f"{end} is after {LAST_REPORT_DAY}, the last day a report can cover", field="end"
        )
    days = (end - start).days + 1
    if days > settings.report_max_days:
        raise JobInputError(
            f"the range spans {days} days; at most {settings.report_max_days}", field="end"
        )
    try:
        return ReportJob(
            report_id=report_id,
            user_id=user_id,
            start=start,
            end=end,
            retry=settings.retry,
            **ReportTuning.of(settings).model_dump(),
        )
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        raise JobInputError(first["msg"], field=field) from None


class ReportIdTakenError(ConflictError):
    """The report id names a report with other parameters (its own are attached)."""

    def __init__(self, report_id: str, user_id: int, start: date, end: date) -> None:
        super().__init__(
            f"report {report_id!r} exists with user_id {user_id}, start {start}, end {end}",
            field="report_id",
        )
        self.user_id, self.start, self.end = user_id, start, end


async def claim_report_id(pool: Pool, job: ReportJob) -> bool:
    """Record `job`'s parameters under its report id, before it starts.

    The same id with the same parameters is the same report (queueing it again is a
    no-op); with other parameters it is refused, rather than answered with the other report.

    Returns:
        Whether this call recorded the id (False: it was there, with these parameters).

    Raises:
        ReportIdTakenError: the id is a report of another agent or other days.
    """
    args = (job.report_id, job.user_id, job.start, job.end, job.workflow_id)
    row = await pool.fetchrow(QUERIES.claim_report, *args)
    if row is None:
        # A concurrent claim of the same id committed after this statement's snapshot.
        row = await pool.fetchrow(QUERIES.claim_report, *args)
    assert row is not None
    existing = (row["user_id"], row["start_day"], row["end_day"])
    if existing != (job.user_id, job.start, job.end):
        raise ReportIdTakenError(job.report_id, *existing)
    return bool(row["fresh"])


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
        NotFoundError: the agent `job.user_id` does not exist (`field` is `user_id`).
        ReportIdTakenError: the report id is a report with other parameters.
    """
    if await pool.fetchrow(QUERIES.find_agent, job.user_id) is None:
        raise NotFoundError(f"no agent with id {job.user_id}", field="user_id")
    fresh = await claim_report_id(pool, job)
    try:
        return await start_job(
            client,
            settings,
            GenerateReportWorkflow.run,
            job,
            workflow_id=job.workflow_id,
            kind="report",
            options=options,
        )
    except BaseException:
        # Not started (Temporal down, a timeout): a failed request changes nothing. Were it
        # started after all, its plan records the report again.
        if fresh:
            await pool.execute(QUERIES.unclaim_report, job.report_id)
        raise
