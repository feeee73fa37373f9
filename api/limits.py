"""Checks before any route runs: body size, content type; and the latency of every request."""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import FieldError, error_response
from api.metrics import ApiMetrics

_WITH_BODY = {"POST", "PUT", "PATCH"}
# The operator pages (api.dead_letter_page) take HTML forms; every other route takes JSON.
_FORM_PREFIX = "/admin/"
_FORM = "application/x-www-form-urlencoded"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestLimits:
    """ASGI middleware: refuse bodies over `max_body_bytes` (413) and non-JSON bodies (415),
    having read at most `max_body_bytes + 1` bytes; time every request into the metrics.

    Only a request that a route of `router` takes (path and method) has its body checked:
    any other is the router's to answer, 404 or 405 with `Allow`, whatever it carries.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, metrics: ApiMetrics, router: Router
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["method"] in _WITH_BODY and self._routed(scope):
                refusal, receive = await self._check_body(scope, receive)
                if refusal is not None:
                    status_code, error = refusal
                    await error_response(status_code, [error])(scope, receive, send_timed)
                    return
            await self.app(scope, receive, send_timed)
        finally:
            route = scope.get("route")
            self.metrics.requests.labels(
                route=getattr(route, "path", "unmatched"), method=scope["method"], status=status
            ).observe(time.perf_counter() - started)

    def _routed(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.router.routes)

    async def _check_body(
        self, scope: Scope, receive: Receive
    ) -> tuple[tuple[int, FieldError] | None, Receive]:
        headers = Headers(scope=scope)
        too_large = (
            413,
            FieldError(field="body", message=f"the body is over {self.max_body_bytes} bytes"),
        )
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return too_large, receive
        content_type = headers.get("content-type", "")
        is_form = content_type.split(";", 1)[0].strip().lower() == _FORM
        if not (_is_json(content_type) or (is_form and scope["path"].startswith(_FORM_PREFIX))):
            return (
                415,
                FieldError(field="Content-Type", message="the body must be application/json"),
            ), receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return too_large, receive
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, replay
