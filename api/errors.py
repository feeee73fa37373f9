"""Errors as JSON that names each bad field: the only shape a 4xx or 5xx answer takes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from offload.jobs.errors import JobInputError


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


def install(app: FastAPI) -> None:
    """Answer validation errors, `ApiError`, `JobInputError` and HTTP errors as `ErrorBody`."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(JobInputError, _job_input_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "missing or wrong bearer token",
        413: "body over OFFLOAD_API_MAX_BODY_BYTES",
        415: "Content-Type is not application/json",
        422: "invalid fields, each named",
    }.items()
}
