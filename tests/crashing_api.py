"""`python -m tests.crashing_api`: `offload api` that dies right after a lead's commit.

The process exits (70) at the moment its answer to `POST /leads` would go out: the lead and
its outbox row are committed, the client gets no answer, and the job is never started by
the API, as when a real API process is killed between its commit and its start. The fault
is added around the app here, so the app itself carries no test hook.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.server import serve_api
from offload.settings import Settings


class DieBeforeAnswering:
    """ASGI middleware: exit the process instead of sending a 201 to `POST /leads`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/leads"):
            await self.app(scope, receive, send)
            return

        async def send_or_die(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 201:
                os._exit(70)
            await send(message)

        await self.app(scope, receive, send_or_die)


def crash_after_commit(app: FastAPI) -> None:
    app.add_middleware(DieBeforeAnswering)


if __name__ == "__main__":
    # Stopped by a kill (or its own crash); nothing sets the event.
    asyncio.run(serve_api(Settings(), asyncio.Event(), extend=crash_after_commit))
