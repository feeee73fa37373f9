"""`POST /leads`: save a lead and queue its confirmation email in one transaction."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.after_response import AfterResponseParam
from api.context import ApiContext, ContextParam, LeadTask
from api.errors import BODY_ERRORS, DATABASE_DOWN, RETRY_AFTER, ApiError, problem
from api.rate_limits import ClientLimit, RateLimits, rate_limits_of
from offload import mail
from offload.assignment import UnknownAgentError, insert_assigned_lead
from offload.db import QUERIES, Pool
from offload.jobs import outbox
from offload.models import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    EmailJob,
    content_key,
)
from offload.settings import Settings

router = APIRouter(tags=["leads"])

ROUTE = "POST /leads"


def _plain_text(value: str) -> str:
    # PostgreSQL refuses NUL and unpaired surrogates would not encode: refuse them here, as 422.
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


class LeadIn(BaseModel):
    """A lead as the web form sends it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, examples=["Ada Lovelace"])
    email: str = Field(
        min_length=3,
        max_length=320,
        examples=["ada@example.com"],
        json_schema_extra={"format": "email"},
    )
    phone: str = Field("", max_length=40, examples=["+44 20 7946 0000"])
    property: str = Field("", max_length=300, examples=["12 Harbour View, Flat 3"])
    source: str = Field("website", min_length=1, max_length=50, examples=["website"])
    agent_id: int | None = Field(
        None,
        ge=1,
        le=2**63 - 1,
        description="the agent the lead is for; unset, the next agent in turn (docs/api.md)",
    )

    @field_validator("name", "email", "phone", "property", "source")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        return _plain_text(value)

    @field_validator("email")
    @classmethod
    def _deliverable_form(cls, value: str) -> str:
        try:
            return mail.check_address(value)
        except mail.InvalidAddressError as err:
            raise ValueError(str(err)) from None


class LeadCreated(BaseModel):
    success: bool = True
    id: int = Field(ge=1, le=2**63 - 1)


def confirmation_email(settings: Settings, lead_id: int, lead: LeadIn) -> EmailJob:
    """The lead's confirmation email; its key (and so its workflow id) comes from the lead.

    The task-queue prefix is part of the key: environments sharing a namespace (tests, say)
    each have their own lead 1.
    """
    return EmailJob(
        to=lead.email,
        template="lead-confirmation",
        data={"name": lead.name, "property": lead.property or "our listings"},
        idempotency_key=f"{settings.task_queue_prefix}lead-{lead_id}-confirmation",
        retry=settings.retry,
    )


class _AlreadyAnswered(Exception):
    """Another request with the same Idempotency-Key committed first."""


async def _stored_answer(pool: Pool, key: str, request_hash: str) -> JSONResponse | None:
    row = await pool.fetchrow(QUERIES.find_idempotency_key, key)
    if row is None:
        return None
    if row["route"] != ROUTE or row["request_hash"] != request_hash:
        raise ApiError(422, "this key was used with a different request", field="Idempotency-Key")
    return JSONResponse(
        json.loads(row["body"]), status_code=row["status"], headers={"Idempotent-Replayed": "true"}
    )


LEAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "saved, its confirmation email queued (none past the recipient's limit); "
        "a retry with the same Idempotency-Key gets the first answer back",
        "headers": {
            "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer to an earlier request",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
    },
    **BODY_ERRORS,
    422: problem(
        "invalid fields, each named; or an Idempotency-Key already used with another body "
        "(field `Idempotency-Key`, as the IETF idempotency-key draft says)"
    ),
    429: problem(
        "over OFFLOAD_API_CLIENT_RATE_LIMIT from this address", **{"Retry-After": RETRY_AFTER}
    ),
    **DATABASE_DOWN,
}


@dataclass(frozen=True)
class LeadSaved:
    """What the after-response tasks of a saved lead get (no personal data)."""

    lead_id: int
    source: str
    path: str
    duration_ms: float


async def log_request(pool: Pool, saved: LeadSaved) -> None:
    await pool.execute(QUERIES.insert_request_log, "POST", saved.path, 201, saved.duration_ms)


async def track_pageview(pool: Pool, saved: LeadSaved) -> None:
    await pool.execute(QUERIES.insert_pageview, saved.path, saved.source, saved.lead_id)


# Cheap and losable: the request log and the pageview run after the response.
AFTER_LEAD: dict[str, LeadTask] = {"request_log": log_request, "pageview": track_pageview}


async def start_job_of_lead(context: ApiContext, job: EmailJob) -> None:
    """Start a saved lead's confirmation job, then mark its outbox row started."""
    if await context.start_after_commit("email", job):
        # Marking is bookkeeping: were it lost, the relay would start the job again, a no-op.
        # So it is queued, and written with the marks of the starts beside it.
        context.marks.add(job.workflow_id)


@router.post(
    "/leads",
    status_code=201,
    response_model=LeadCreated,
    responses=LEAD_RESPONSES,
    dependencies=[ClientLimit],
    summary="Save a lead and queue its confirmation email",
)
async def create_lead(
    lead: LeadIn,
    request: Request,
    context: ContextParam,
    after_response: AfterResponseParam,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="a retried POST with the same key and body gets the first answer "
            "back (with `Idempotent-Replayed: true`) and creates nothing new; the same key with "
            "another body is a 422; a key is kept OFFLOAD_API_RETENTION_HOURS (24)",
        ),
    ] = None,
) -> Any:
    started = time.perf_counter()
    pool = context.pool
    # exclude_none: a lead naming no agent hashes as it did before `agent_id` existed.
    request_hash = content_key(ROUTE, lead.model_dump(exclude_none=True))
    if idempotency_key is not None:
        answered = await _stored_answer(pool, idempotency_key, request_hash)
        if answered is not None:
            return answered
    try:
        lead_id, job = await _save(
            context, rate_limits_of(request), lead, idempotency_key, request_hash
        )
    except _AlreadyAnswered:
        assert idempotency_key is not None
        answered = await _stored_answer(pool, idempotency_key, request_hash)
        assert answered is not None
        return answered
    context.metrics.leads.inc()
    if job is None:
        context.metrics.rate_limited.labels(limit="recipient").inc()
    # The committed outbox row is what makes the job safe, not its start: so the response
    # does not wait for Temporal. The start follows the response at once; were it lost (the
    # process dies, the task is dropped), the relay starts the row by the same id. Without
    # its worker the API leaves the start to the relay, which the commit woke.
    if job is not None and context.leave_starts_to_relay:
        context.metrics.job_starts.labels(outcome="relayed").inc()
    elif job is not None:
        after_response("job_start", start_job_of_lead, context, job)
    saved = LeadSaved(
        lead_id=lead_id,
        source=lead.source,
        path=request.url.path,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    for name, task in context.after_lead.items():
        after_response(name, task, pool, saved)
    return JSONResponse(LeadCreated(id=lead_id).model_dump(), status_code=201)


async def _save(
    context: ApiContext,
    limits: RateLimits,
    lead: LeadIn,
    idempotency_key: str | None,
    request_hash: str,
) -> tuple[int, EmailJob | None]:
    """Save the lead, its confirmation job in the outbox and the key's answer, atomically.

    Past the recipient's limit, the lead is saved with no job (None).
    """
    async with context.pool.acquire() as conn, conn.transaction():
        try:
            lead_id = await insert_assigned_lead(
                conn,
                name=lead.name,
                email=lead.email,
                phone=lead.phone,
                property=lead.property,
                source=lead.source,
                agent_id=lead.agent_id,
            )
        except UnknownAgentError as err:
            raise ApiError(422, str(err), field="agent_id") from None
        job: EmailJob | None = None
        if await limits.may_email(conn, lead.email):
            job = confirmation_email(context.settings, lead_id, lead)
            await outbox.write(
                conn, "email", job.workflow_id, job, wake_relay=context.leave_starts_to_relay
            )
        if idempotency_key is not None:
            body = LeadCreated(id=lead_id).model_dump_json()
            # A concurrent twin waits here for our commit, then finds the key taken.
            claimed = await conn.fetchval(
                QUERIES.claim_idempotency_key, idempotency_key, ROUTE, request_hash, 201, body
            )
            if claimed is None:
                raise _AlreadyAnswered
    return lead_id, job
