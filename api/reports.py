"""`POST /reports` starts a report job; `GET /reports/{id}` tells how far it got."""

from __future__ import annotations

import asyncio
import hmac
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.context import ContextParam
from api.errors import (
    BODY_ERRORS,
    RETRY_AFTER,
    UNAUTHORIZED,
    ApiError,
    lookup_errors,
    problem,
    unavailable,
)
from offload.jobs.reports import enqueue_report, new_report_job
from offload.jobs.start import StartOptions
from offload.kinds import HIGHEST_PRIORITY, LOWEST_PRIORITY
from offload.models import REPORT_ID_PATTERN, ReportResult, report_workflow_id
from workflows.reports import GenerateReportWorkflow

QUERY_TIMEOUT_SECONDS = 2.0

_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <OFFLOAD_API_TOKEN>`, compared in constant time; a "
    "server without OFFLOAD_API_TOKEN (a laptop's) leaves these routes open",
)


async def require_token(
    context: ContextParam,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries `Authorization: Bearer <OFFLOAD_API_TOKEN>`.

    With no token configured (the dev default) the routes are open.
    """
    token = context.settings.api_token
    if token is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise ApiError(
            401,
            "missing or wrong bearer token" if given else "a bearer token is required",
            field="Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )


TEMPORAL_DOWN: dict[int | str, dict[str, Any]] = {
    503: problem("Temporal or PostgreSQL is unavailable", **{"Retry-After": RETRY_AFTER})
}

router = APIRouter(
    tags=["reports"],
    dependencies=[Depends(require_token)],
    responses={**UNAUTHORIZED, **TEMPORAL_DOWN},
)

# The largest integer every JSON parser reads exactly (RFC 7493, I-JSON): a bigger id would
# reach some clients rounded.
MAX_JSON_INTEGER = 2**53 - 1


class ReportRequest(BaseModel):
    """A leads report for agent `user_id` over the days `start` to `end`, inclusive."""

    model_config = ConfigDict(extra="forbid")

    report_id: str | None = Field(
        None,
        pattern=REPORT_ID_PATTERN,
        description="names the report; the same id twice is one report (default: a new uuid)",
    )
    user_id: int = Field(ge=1, le=MAX_JSON_INTEGER)
    start: date
    end: date
    delay_seconds: int | None = Field(
        None, ge=1, le=366 * 86400, description="start the job this many seconds later"
    )
    at: AwareDatetime | None = Field(None, description="start the job at this time")
    priority: int | None = Field(
        None, ge=HIGHEST_PRIORITY, le=LOWEST_PRIORITY, description="1 runs first (default 3)"
    )


class ReportAccepted(BaseModel):
    success: bool = True
    id: str
    workflow_id: str
    status_url: str


class ReportStatus(BaseModel):
    id: str
    workflow_id: str
    status: str
    progress: dict[str, Any] | None = None
    result: Any = None


@router.post(
    "/reports",
    status_code=202,
    response_model=ReportAccepted,
    responses={
        202: {
            "description": "started (or, for a known `report_id`, already started)",
            "headers": {
                "Location": {"description": "its status URL", "schema": {"type": "string"}}
            },
        },
        **BODY_ERRORS,
        422: problem(
            "invalid fields, each named; `end` before `start`, after 9999-12-30 or past "
            "OFFLOAD_REPORT_MAX_DAYS after it; no agent with `user_id`; `at` in the past or "
            "beside `delay_seconds`"
        ),
        409: problem("`report_id` is a report with other parameters, which the message names"),
    },
)
async def create_report(body: ReportRequest, context: ContextParam) -> Any:
    """Start the report job and answer at once; `Location` is where its status is.

    The same `report_id` twice is one report: the second answer points at the first. The
    same id with other parameters is a 409 that names the existing report's.
    """
    settings = context.settings
    if body.delay_seconds is not None and body.at is not None:
        raise ApiError(422, "give delay_seconds or at, not both", field="at")
    if body.at is not None and body.at <= datetime.now(UTC):
        raise ApiError(422, f"{body.at.isoformat()} is in the past", field="at")
    # Bad input raises `JobInputError`, which the app answers as a 422 naming the field.
    job = new_report_job(
        settings,
        report_id=body.report_id or uuid.uuid4().hex,
        user_id=body.user_id,
        start=body.start,
        end=body.end,
    )
    try:
        async with asyncio.timeout(settings.api_start_timeout_seconds * 5):
            await enqueue_report(
                context.client,
                settings,
                context.pool,
                job,
                StartOptions(
                    delay=timedelta(seconds=body.delay_seconds) if body.delay_seconds else None,
                    at=body.at,
                    priority=body.priority,
                ),
            )
    except (RPCError, RuntimeError, TimeoutError):
        raise unavailable("Temporal") from None
    location = f"/reports/{job.report_id}"
    accepted = ReportAccepted(id=job.report_id, workflow_id=job.workflow_id, status_url=location)
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": location})


@router.get(
    "/reports/{report_id}",
    response_model=ReportStatus,
    responses=lookup_errors("report", "report_id"),
)
async def get_report(
    report_id: Annotated[str, Path(pattern=REPORT_ID_PATTERN)], context: ContextParam
) -> ReportStatus:
    """The report's status, its progress while it runs, and its result when done."""
    workflow_id = report_workflow_id(report_id)
    handle = context.client.get_workflow_handle(workflow_id, result_type=ReportResult)
    try:
        async with asyncio.timeout(QUERY_TIMEOUT_SECONDS * 2):
            description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, f"no report {report_id!r}", field="report_id") from None
        raise unavailable("Temporal") from None
    except (RuntimeError, TimeoutError):
        raise unavailable("Temporal") from None
    status = description.status or WorkflowExecutionStatus.RUNNING
    answer = ReportStatus(id=report_id, workflow_id=workflow_id, status=status.name.lower())
    try:
        async with asyncio.timeout(QUERY_TIMEOUT_SECONDS):
            if status == WorkflowExecutionStatus.RUNNING:
                progress = await handle.query(GenerateReportWorkflow.progress)
                answer.progress = progress.model_dump(mode="json")
            elif status == WorkflowExecutionStatus.COMPLETED:
                answer.result = await handle.result()
    except Exception:
        # No worker to answer the query yet, or a busy one: the status alone still holds.
        pass
    return answer
