"""`POST /reports` starts a report job; `GET /reports/{id}` tells how far it got."""

from __future__ import annotations

import asyncio
import hmac
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.context import ContextParam
from api.errors import ERROR_RESPONSES, ApiError
from offload.db import QUERIES
from offload.models import LAST_REPORT_DAY, ReportResult
from starters.jobs import start_job
from starters.report import ReportIdTakenError, claim_report_id, new_report_job
from workflows.reports import GenerateReportWorkflow

REPORT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
QUERY_TIMEOUT_SECONDS = 2.0

_bearer = HTTPBearer(auto_error=False, description="OFFLOAD_API_TOKEN")


def require_token(
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


router = APIRouter(
    tags=["reports"],
    dependencies=[Depends(require_token)],
    responses={
        **ERROR_RESPONSES,
        409: ERROR_RESPONSES[422]
        | {"description": "the report id is a report with other parameters"},
        503: ERROR_RESPONSES[422] | {"description": "Temporal down"},
    },
)


class ReportRequest(BaseModel):
    """A leads report for agent `user_id` over the days `start` to `end`, inclusive."""

    model_config = ConfigDict(extra="forbid")

    report_id: str | None = Field(
        None,
        pattern=REPORT_ID_PATTERN,
        description="names the report; the same id twice is one report (default: a new uuid)",
    )
    user_id: int = Field(ge=1, le=2**63 - 1)
    start: date = Field(le=LAST_REPORT_DAY)
    end: date = Field(le=LAST_REPORT_DAY)


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


def _temporal_down() -> ApiError:
    return ApiError(503, "Temporal is unavailable; retry later", headers={"Retry-After": "5"})


@router.post("/reports", status_code=202, response_model=ReportAccepted)
async def create_report(body: ReportRequest, context: ContextParam) -> Any:
    """Start the report job and answer at once; `Location` is where its status is.

    The same `report_id` twice is one report: the second answer points at the first. The
    same id with other parameters is a 409 that names the existing report's.
    """
    settings = context.settings
    if body.end < body.start:
        raise ApiError(422, f"{body.end} is before start {body.start}", field="end")
    days = (body.end - body.start).days + 1
    if days > settings.report_max_days:
        raise ApiError(
            422, f"the range spans {days} days; at most {settings.report_max_days}", field="end"
        )
    if await context.pool.fetchrow(QUERIES.find_agent, body.user_id) is None:
        raise ApiError(422, f"no agent with id {body.user_id}", field="user_id")
    job = new_report_job(
        settings,
        report_id=body.report_id or uuid.uuid4().hex,
        user_id=body.user_id,
        start=body.start,
        end=body.end,
    )
    try:
        await claim_report_id(context.pool, job)
    except ReportIdTakenError as taken:
        raise ApiError(409, str(taken), field="report_id") from None
    try:
        async with asyncio.timeout(settings.api_start_timeout_seconds * 5):
            await start_job(
                context.client,
                settings,
                GenerateReportWorkflow.run,
                job,
                workflow_id=job.workflow_id,
            )
    except (RPCError, RuntimeError, TimeoutError):
        raise _temporal_down() from None
    location = f"/reports/{job.report_id}"
    accepted = ReportAccepted(id=job.report_id, workflow_id=job.workflow_id, status_url=location)
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": location})


@router.get(
    "/reports/{report_id}",
    response_model=ReportStatus,
    responses={404: ERROR_RESPONSES[422] | {"description": "no report with this id"}},
)
async def get_report(
    report_id: Annotated[str, Path(pattern=REPORT_ID_PATTERN)], context: ContextParam
) -> ReportStatus:
    """The report's status, its progress while it runs, and its result when done."""
    workflow_id = f"report-{report_id}"
    handle = context.client.get_workflow_handle(workflow_id, result_type=ReportResult)
    try:
        async with asyncio.timeout(QUERY_TIMEOUT_SECONDS * 2):
            description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, f"no report {report_id!r}", field="report_id") from None
        raise _temporal_down() from None
    except (RuntimeError, TimeoutError):
        raise _temporal_down() from None
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
