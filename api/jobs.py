"""`GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/cancel`: the operator's view of jobs.

The same client layer as `offload jobs list|show|cancel` (`offload.jobs.control`), behind
the bearer token.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError

from api.context import ContextParam
from api.errors import BODY_ERRORS, UNAUTHORIZED, ApiError, lookup_errors, problem
from api.reports import TEMPORAL_DOWN, require_token
from offload.jobs.control import (
    STATUSES,
    CancelOutcome,
    JobInfo,
    JobQuery,
    cancel_job,
    list_jobs,
    show_job,
)
from offload.kinds import names

# Visibility and a history read per job: a page of jobs may take a moment, never long.
TIMEOUT_SECONDS = 10.0
WORKFLOW_ID_PATTERN = r"^[\x21-\x7e]{1,400}$"

router = APIRouter(
    tags=["jobs"],
    dependencies=[Depends(require_token)],
    responses={**UNAUTHORIZED, **TEMPORAL_DOWN},
)

WorkflowId = Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN, description="the job's workflow id")]


class CancelRequest(BaseModel):
    """Why the job is cancelled (shown in the Web UI); `{}` will do."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=200)


def _one_of(names: Iterable[str]) -> str:
    """A pattern that only these names match (the schema lists them)."""
    return f"^({'|'.join(re.escape(name) for name in names)})$"


def _temporal_down() -> ApiError:
    return ApiError(503, "Temporal is unavailable; retry later", headers={"Retry-After": "5"})


@router.get(
    "/jobs",
    response_model=list[JobInfo],
    responses={422: problem("an unknown `kind` or `status`, a bound out of range, each named")},
)
async def get_jobs(
    context: ContextParam,
    kind: Annotated[str | None, Query(pattern=_one_of(names()), description="a job kind")] = None,
    status: Annotated[str | None, Query(pattern=_one_of(STATUSES), description="a status")] = None,
    since_seconds: Annotated[
        int | None, Query(ge=1, le=366 * 86400, description="started within this many seconds")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[JobInfo]:
    """Jobs, newest first: kind, status (`scheduled` while a delayed job waits), priority,
    attempts, started and closed times, and the Web UI link."""
    # An unknown kind or status raises `JobInputError`: a 422 naming the field.
    query = JobQuery(
        kind=kind,
        status=status,
        since=timedelta(seconds=since_seconds) if since_seconds else None,
        limit=limit,
    )
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            return await list_jobs(context.client, context.settings, query, datetime.now(UTC))
    except (RPCError, RuntimeError, TimeoutError):
        raise _temporal_down() from None


@router.get(
    "/jobs/{workflow_id}",
    response_model=JobInfo,
    responses=lookup_errors("job", "workflow_id"),
)
async def get_job(workflow_id: WorkflowId, context: ContextParam) -> JobInfo:
    """One job by its workflow id."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            job = await show_job(context.client, context.settings, workflow_id, datetime.now(UTC))
    except (RPCError, RuntimeError, TimeoutError):
        raise _temporal_down() from None
    if job is None:
        raise ApiError(404, f"no job {workflow_id!r}", field="workflow_id")
    return job


@router.post(
    "/jobs/{workflow_id}/cancel",
    status_code=202,
    response_model=CancelOutcome,
    responses={
        **BODY_ERRORS,
        404: problem("no job with this id"),
        409: problem("the job has closed already"),
    },
)
async def post_cancel(
    workflow_id: WorkflowId, body: CancelRequest, context: ContextParam
) -> JSONResponse:
    """Ask the job to cancel: it ends Canceled, or Completed if a send on the wire finished."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            outcome = await cancel_job(context.client, context.settings, workflow_id, body.reason)
    except (RPCError, RuntimeError, TimeoutError):
        raise _temporal_down() from None
    if outcome.outcome == "not found":
        raise ApiError(404, f"no job {workflow_id!r}", field="workflow_id")
    if outcome.outcome != "cancel requested":
        raise ApiError(409, f"job {workflow_id!r} is {outcome.outcome}", field="workflow_id")
    return JSONResponse(outcome.model_dump(), status_code=202)
