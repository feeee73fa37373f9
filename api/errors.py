"""Errors as `application/problem+json` (RFC 9457) that name each bad field: the only shape a
4xx or 5xx answer takes.

The problem members (`type`, `title`, `status`, `detail`) are what generic HTTP clients and
gateways understand; the extension members `success` and `errors` are the shape the API had
before, kept so that its clients go on reading the per-field list.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Literal

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from offload.jobs.errors import ConflictError, JobInputError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

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

    field: str | None = Field(description="the body field, header or parameter; null: the request")
    message: str


class ErrorBody(BaseModel):
    """A problem (RFC 9457) with the list of what is wrong, one entry per field."""

    type: str = Field("about:blank", description="always about:blank: the status says it all")
    title: str = Field(description="the status's reason phrase", examples=["Unprocessable Content"])
    status: int = Field(ge=400, le=599, description="the HTTP status, repeated")
    detail: str = Field(description="the first message of `errors`, for a human")
    success: Literal[False] = False
    errors: list[FieldError] = Field(min_length=1)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


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
) -> ProblemResponse:
    body = ErrorBody(
        title=HTTPStatus(status).phrase, status=status, detail=errors[0].message, errors=errors
    )
    return ProblemResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _field_of(loc: tuple[Any, ...]) -> str | None:
    # ("body", "email") -> "email"; ("header", "idempotency-key") -> "Idempotency-Key"
    where, *rest = loc or ("body",)
    if where == "header" and rest:
        return "-".join(part.capitalize() for part in str(rest[0]).split("-"))
    path = ".".join(str(part) for part in rest)
    return path or str(where)


def not_json(reason: str) -> ProblemResponse:
    """The one answer to a body that cannot be read as JSON: 400, a syntax error (RFC 9110)."""
    return error_response(400, [FieldError(field="body", message=f"not valid JSON: {reason}")])


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return not_json(f"{error.get('ctx', {}).get('error', 'syntax error')}")
    errors = [
        FieldError(field=_field_of(tuple(error.get("loc", ()))), message=str(error.get("msg", "")))
        for error in exc.errors()
    ]
    return error_response(422, errors)


async def _api_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.errors, exc.headers)


async def _job_input_error(request: Request, exc: Exception) -> ProblemResponse:
    # The client layer's refusals read the same here as in the CLI: its message, its field.
    assert isinstance(exc, JobInputError)
    status = 409 if isinstance(exc, ConflictError) else 422
    return error_response(status, [FieldError(field=exc.field, message=str(exc))])


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body its JSON decoder cannot even read (not UTF-8, say).
        return not_json("the body is not text in a JSON encoding")
    return error_response(
        exc.status_code,
        [FieldError(field=None, message=str(exc.detail))],
        dict(exc.headers) if exc.headers else None,
    )


async def _database_down(request: Request, exc: Exception) -> ProblemResponse:
    # The type only: a driver's message can carry the DSN's host and user.
    log.warning(
        "%s %s: PostgreSQL unavailable (%s)", request.method, request.url.path, type(exc).__name__
    )
    return await _api_error(request, unavailable("the database"))


async def _temporal_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RPCError)
    if exc.status not in TEMPORAL_OUTAGES:
        return await _internal_error(request, exc)
    log.warning(
        "%s %s: Temporal unavailable (%s)", request.method, request.url.path, exc.status.name
    )
    return await _api_error(request, unavailable("Temporal"))


async def _internal_error(request: Request, exc: Exception) -> ProblemResponse:
    # Starlette's server-error middleware logs the traceback after this answer.
    return error_response(500, [FieldError(field=None, message="internal error")])


def install(app: FastAPI) -> None:
    """Answer every error as `ErrorBody`: validation, `ApiError`, `JobInputError`, HTTP
    errors, outages (503 with `Retry-After`) and, last, anything unexpected (500); and say
    so in the OpenAPI document."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(JobInputError, _job_input_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for outage in DATABASE_OUTAGES:
        app.add_exception_handler(outage, _database_down)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(Exception, _internal_error)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _as_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_ERROR_BODY_REF = "#/components/schemas/ErrorBody"


def _as_problems(document: dict[str, Any]) -> dict[str, Any]:
    # FastAPI files every response model under the route's media type (application/json):
    # an ErrorBody is served as problem+json, so the document says that instead.
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                media = content.get("application/json")
                if media is not None and media.get("schema", {}).get("$ref") == _ERROR_BODY_REF:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return document


def problem(description: str, **headers: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry: an `ErrorBody` as problem+json, with `headers` described."""
    entry: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        entry["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return entry


def lookup_errors(what: str, id_param: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a GET by id: 404 for an unknown id, 422 for one out of pattern."""
    return {404: problem(f"no {what} with this id"), 422: problem(f"a `{id_param}` out of pattern")}


RETRY_AFTER = "seconds to wait before trying again"

# Any route that reads or writes the database can meet its outage.
DATABASE_DOWN: dict[int | str, dict[str, Any]] = {
    503: problem("PostgreSQL is unavailable", **{"Retry-After": RETRY_AFTER}),
}

# The refusals every route that takes a JSON body can give.
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem("the body is not valid JSON (field `body`)"),
    413: problem("the body is over OFFLOAD_API_MAX_BODY_BYTES (field `body`)"),
    415: problem("Content-Type is not application/json (field `Content-Type`)"),
    422: problem("invalid fields, each named"),
}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: problem(
        "missing or wrong bearer token (field `Authorization`)",
        **{"WWW-Authenticate": "Bearer"},
    ),
}
