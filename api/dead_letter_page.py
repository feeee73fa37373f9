"""`GET /admin/dead-letters`: the operator page of the dead-letter queue, with its forms.

Server-rendered (Jinja2 with autoescape), usable without JavaScript. Entries come grouped by
job kind and error type; the redrive and discard buttons call the same client functions as
`offload dlq redrive|discard`, so the dead-letter workflow checks and records every change.

Access: with `OFFLOAD_API_TOKEN` set, a request carries the token either in
`Authorization: Bearer` (scripts) or in the HttpOnly, SameSite=Strict cookie that the login
form sets; never in the URL. Every form carries a CSRF token that must match its cookie
(double submit), so another site cannot make an operator's browser act.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.context import ApiContext, ContextParam
from offload.db import QUERIES
from offload.jobs.dead_letters import STATUSES, check_ids, discard, redrive
from offload.jobs.errors import JobInputError
from offload.jobs.start import workflow_ui_url
from offload.models import DiscardRequest, RedriveRequest
from offload.settings import Settings

router = APIRouter(prefix="/admin", include_in_schema=False)

PAGE = "/admin/dead-letters"
LOGIN = "/admin/login"
TOKEN_COOKIE = "offload_token"
CSRF_COOKIE = "offload_csrf"
NOTICE_COOKIE = "offload_notice"
LOGIN_SECONDS = 12 * 3600
# The page shows at most this many entries (newest first); the group counts cover all.
PAGE_LIMIT = 200

# Keys of a job's input whose values identify a person: masked unless the operator asks.
PERSONAL_FIELDS = frozenset(
    {"to", "email", "name", "phone", "recipient", "recipients", "agent_email", "agent_name"}
)
MASK = "••• masked •••"
_EMAIL = re.compile(r"[^\s<>@\"']+@[^\s<>@\"']+")
_KIND = re.compile(r"^[a-z0-9_-]{1,50}$")

# The page holds personal data when revealed: never cached, framed, or sent on as a referrer.
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class PageError(Exception):
    """A refused request to the page: answered as HTML with a status, naming the field."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message


def mask_personal(value: Any) -> Any:
    """`value` with the values of personal keys masked, and email addresses in text too."""
    if isinstance(value, Mapping):
        return {k: MASK if k in PERSONAL_FIELDS else mask_personal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_personal(v) for v in value]
    if isinstance(value, str):
        return _EMAIL.sub(MASK, value)
    return value


@dataclass
class EntryView:
    id: str
    status: str
    workflow_id: str
    workflow_url: str
    error_message: str
    attempts: int
    failed_at: datetime
    input: str
    redrive_workflow_id: str | None
    redrive_url: str | None


@dataclass
class GroupView:
    kind: str
    error_type: str
    dead: int
    total: int
    first_failed_at: datetime
    last_failed_at: datetime
    entries: list[EntryView] = field(default_factory=list)

    @property
    def dead_ids(self) -> list[str]:
        """The dead entries of this group shown on the page: what its buttons act on."""
        return [e.id for e in self.entries if e.status == "dead"]


async def load_groups(
    context: ApiContext, kind: str | None, status: str | None, *, reveal: bool
) -> list[GroupView]:
    """The groups (kind, error type) of the queue, each with its newest entries."""
    settings = context.settings
    groups = {
        (row["kind"], row["error_type"]): GroupView(
            kind=row["kind"],
            error_type=row["error_type"],
            dead=row["dead"],
            total=row["total"],
            first_failed_at=row["first_failed_at"],
            last_failed_at=row["last_failed_at"],
        )
        for row in await context.pool.fetch(QUERIES.dead_letter_page_groups, kind, status)
    }
    rows = await context.pool.fetch(QUERIES.dead_letter_page_entries, kind, status, PAGE_LIMIT)
    for row in rows:
        job_input = json.loads(row["input"])
        message = row["error_message"]
        if not reveal:
            job_input, message = mask_personal(job_input), mask_personal(message)
        redrive_id = row["redrive_workflow_id"]
        group = groups.get((row["kind"], row["error_type"]))
        if group is None:  # recorded between the two queries: it shows on the next load
            continue
        group.entries.append(
            EntryView(
                id=row["id"],
                status=row["status"],
                workflow_id=row["workflow_id"],
                workflow_url=workflow_ui_url(settings, row["workflow_id"], row["run_id"]),
                error_message=message,
                attempts=row["attempts"],
                failed_at=row["failed_at"],
                input=json.dumps(job_input, indent=2, sort_keys=True, ensure_ascii=False),
                redrive_workflow_id=redrive_id,
                redrive_url=workflow_ui_url(settings, redrive_id) if redrive_id else None,
            )
        )
    return list(groups.values())


Access = Literal["open", "bearer", "cookie"]


def access_of(request: Request, settings: Settings) -> Access | None:
    """How the request may use the page; None when it must log in first.

    Raises:
        PageError: an `Authorization` header with the wrong token (401).
    """
    token = settings.api_token
    if token is None:
        return "open"
    expected = token.get_secret_value().encode()
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise PageError(401, "Authorization", "missing or wrong bearer token")
        return "bearer"
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie is not None and hmac.compare_digest(cookie.encode(), expected):
        return "cookie"
    return None


def _csrf_of(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token, and whether it is new (so the response must set it)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def _check_csrf(request: Request, form: Mapping[str, list[str]], access: Access | None) -> None:
    # A browser never adds an Authorization header by itself: a bearer request is no forgery.
    if access == "bearer":
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    [given] = form.get("csrf_token", [""])[:1] or [""]
    if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
        raise PageError(
            403, "csrf_token", "the form is stale or came from another site; reload the page"
        )


async def _form(request: Request) -> dict[str, list[str]]:
    # A urlencoded body, as every form of the page sends (the body size is limited upstream).
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise PageError(415, "Content-Type", "send the form as application/x-www-form-urlencoded")
    try:
        return parse_qs((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise PageError(400, "body", "the form is not UTF-8") from None


def _filters(kind: str | None, status: str | None) -> tuple[str | None, str | None]:
    kind, status = kind or None, status or None
    if kind is not None and not _KIND.match(kind):
        raise PageError(400, "kind", "a job kind is 1 to 50 of a-z, 0-9, _ and -")
    if status is not None and status not in STATUSES:
        raise PageError(400, "status", f"one of {', '.join(STATUSES)}")
    return kind, status


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _render(request: Request, template: str, code: int = 200, **values: Any) -> HTMLResponse:
    csrf, new = _csrf_of(request)
    html = _templates.get_template(template).render(csrf_token=csrf, **values)
    response = HTMLResponse(html, status_code=code, headers=_HEADERS)
    if new:
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(request), path="/"
        )
    return response


def _error_page(request: Request, err: PageError) -> HTMLResponse:
    return _render(request, "error.html", err.status, error=err, page=PAGE)


def _redirect(url: str, notice: tuple[str, str] | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303, headers=_HEADERS)
    if notice is not None:
        # Shown once by the page after the redirect (post/redirect/get); no secret in it.
        text = json.dumps(notice).encode()
        response.set_cookie(
            NOTICE_COOKIE,
            base64.urlsafe_b64encode(text).decode(),
            max_age=60,
            httponly=True,
            samesite="strict",
            path=PAGE,
        )
    return response


def _notice_of(request: Request) -> tuple[str, str] | None:
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return None
    try:
        level, text = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return None
    return (str(level), str(text))


def _page_url(kind: str | None, status: str | None, reveal: bool) -> str:
    query = {k: v for k, v in (("kind", kind), ("status", status)) if v}
    if reveal:
        query["reveal"] = "1"
    return f"{PAGE}?{urlencode(query)}" if query else PAGE


@router.get(
    "/dead-letters", response_class=HTMLResponse, summary="The dead-letter queue, as a page"
)
async def dead_letters_page(
    request: Request,
    context: ContextParam,
    kind: str | None = None,
    status: str | None = None,
    reveal: bool = False,
) -> Response:
    """Entries by kind and error type, with redrive and discard buttons."""
    try:
        access = access_of(request, context.settings)
        if access is None:
            return _redirect(LOGIN)
        kind, status = _filters(kind, status)
    except PageError as err:
        return _error_page(request, err)
    groups = await load_groups(context, kind, status, reveal=reveal)
    response = _render(
        request,
        "dead-letters.html",
        groups=groups,
        kind=kind or "",
        status=status or "",
        statuses=STATUSES,
        reveal=reveal,
        shown=sum(len(g.entries) for g in groups),
        total=sum(g.total for g in groups),
        limit=PAGE_LIMIT,
        notice=_notice_of(request),
        open_access=access == "open",
        logged_in=access == "cookie",
        toggle_url=_page_url(kind, status, not reveal),
        ui_url=context.settings.temporal_ui_url,
    )
    response.delete_cookie(NOTICE_COOKIE, path=PAGE)
    return response


async def _act(
    request: Request, context: ApiContext, action: Literal["redrive", "discard"]
) -> Response:
    try:
        access = access_of(request, context.settings)
        if access is None:
            return _redirect(LOGIN)
        form = await _form(request)
        _check_csrf(request, form, access)
        [kind] = form.get("kind", [""])[:1] or [""]
        [status] = form.get("status", [""])[:1] or [""]
        back = _page_url(*_filters(kind, status), reveal=False)
        try:
            ids = check_ids([i for i in form.get("ids", []) if i])
        except JobInputError as err:
            raise PageError(400, "ids", str(err)) from None
        if not ids:
            raise PageError(400, "ids", "choose at least one entry")
    except PageError as err:
        return _error_page(request, err)
    settings = context.settings
    try:
        if action == "redrive":
            result = await redrive(context.client, settings, RedriveRequest(ids=ids))
            done = [f"{j.entry_id} as {j.workflow_id}" for j in result.redriven]
            text = f"redriven {', '.join(done)}" if done else "nothing to redrive"
        else:
            discarded = await discard(context.client, settings, DiscardRequest(ids=ids))
            text = f"discarded {', '.join(discarded.discarded) or 'nothing'}"
    except JobInputError as err:
        return _redirect(back, ("error", str(err)))
    return _redirect(back, ("ok", text))


@router.post("/dead-letters/redrive", response_class=HTMLResponse)
async def redrive_entries(request: Request, context: ContextParam) -> Response:
    """Redrive the entries of the form's `ids`: each starts again under `<id>-redrive-<n>`."""
    return await _act(request, context, "redrive")


@router.post("/dead-letters/discard", response_class=HTMLResponse)
async def discard_entries(request: Request, context: ContextParam) -> Response:
    """Discard the entries of the form's `ids`: they are never redriven."""
    return await _act(request, context, "discard")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, context: ContextParam) -> Response:
    """The login form: the operator types `OFFLOAD_API_TOKEN` once per browser session."""
    if context.settings.api_token is None:
        return _redirect(PAGE)
    return _render(request, "login.html", error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, context: ContextParam) -> Response:
    """Check the token and keep it in an HttpOnly, SameSite=Strict cookie; never in the URL."""
    token = context.settings.api_token
    if token is None:
        return _redirect(PAGE)
    try:
        form = await _form(request)
        _check_csrf(request, form, None)
    except PageError as err:
        return _error_page(request, err)
    [given] = form.get("token", [""])[:1] or [""]
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        return _render(request, "login.html", 401, error="token: wrong token")
    response = _redirect(PAGE)
    response.set_cookie(
        TOKEN_COOKIE,
        given,
        max_age=LOGIN_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/admin",
    )
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    """Forget the token cookie."""
    try:
        _check_csrf(request, await _form(request), None)
    except PageError as err:
        return _error_page(request, err)
    response = _redirect(LOGIN)
    response.delete_cookie(TOKEN_COOKIE, path="/admin")
    return response
