"""Errors as JSON that names each bad field: the only shape a 4xx or 5xx answer takes."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from offload.jobs.errors import JobInputError

log = logging.getLogger(__name__)

# How long a client should wait before it retries a request that met an outage.
RETRY_AFTER_SECONDS = 5

# What PostgreSQL being down, restarting or full looks like from asyncpg: refused or reset
# sockets (OSError, TimeoutError among them), a connection lost mid-query, a server shutting
# down or not yet accepting connections, no connection slot left.
DATABASE_OUTAGES: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)
TEMPORAL_OUTAGES = (
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
)


class FieldError(BaseModel):
    """One thing wrong with a request: the field (None for the request as a whole), and why."""

    field: str | None
    message: str


class ErrorBody(BaseModel):
    success: bool = False
    errors: list[FieldError]


class ApiError(Exception):
    """A refusal with a status: raised by routes, answered as an `ErrorBody`."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = [FieldError(field=field, message=message)]
        self.headers = headers


def unavailable(service: str) -> ApiError:
    """503 for an outage of `service`, with `Retry-After`: the request may succeed later."""
    return ApiError(
        503,
        f"{service} is unavailable; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def error_response(
    status: int, errors: list[FieldError], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(errors=errors).model_dump(mode="json"), status_code=status, headers=headers
    )


def _field_of(loc: tuple[Any, ...]) -> str | None:
    # ("body", "email") -> "email"; ("header", "idempotency-key") -> "Idempotency-Key"
    where, *rest = loc or ("body",)
    if where == "header" and rest:
        return "-".join(part.capitalize() for part in str(rest[0]).split("-"))
    path = ".".join(str(part) for part in rest)
    return path or str(where)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(field=_field_of(tuple(error.get("loc", ()))), message=str(error.get("msg", "")))
        for error in exc.errors()
    ]
    return error_response(422, errors)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.errors, exc.headers)


async def _job_input_error(request: Request, exc: Exception) -> JSONResponse:
    # The client layer's refusals read the same here as in the CLI: its message, its field.
    assert isinstance(exc, JobInputError)
    return error_response(422, [FieldError(field=exc.field, message=str(exc))])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(
        exc.status_code,
        [FieldError(field=None, message=str(exc.detail))],
        dict(exc.headers) if exc.headers else None,
    )


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    # The type only: a driver's message can carry the DSN's host and user.
    log.warning(
        "%s %s: PostgreSQL unavailable (%s)", request.method, request.url.path, type(exc).__name__
    )
    return await _api_error(request, unavailable("the database"))


async def _temporal_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    if exc.status not in TEMPORAL_OUTAGES:
        return await _internal_error(request, exc)
    log.warning(
        "%s %s: Temporal unavailable (%s)", request.method, request.url.path, exc.status.name
    )
    return await _api_error(request, unavailable("Temporal"))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's server-error middleware logs the traceback after this answer.
    return error_response(500, [FieldError(field=None, message="internal error")])


def install(app: FastAPI) -> None:
    """Answer every error as `ErrorBody`: validation, `ApiError`, `JobInputError`, HTTP
    errors, outages (503 with `Retry-After`) and, last, anything unexpected (500)."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(JobInputError, _job_input_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for outage in DATABASE_OUTAGES:
        app.add_exception_handler(outage, _database_down)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(Exception, _internal_error)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "missing or wrong bearer token",
        413: "body over OFFLOAD_API_MAX_BODY_BYTES",
        415: "Content-Type is not application/json",
        422: "invalid fields, each named",
        503: "PostgreSQL or Temporal unavailable; retry after `Retry-After` seconds",
    }.items()
}
