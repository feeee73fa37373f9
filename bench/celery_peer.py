"""The Celery peer of `bench.peers`: one task that delivers the email as Offload's activity does.

`celery -A bench.celery_peer worker` runs it; each worker child keeps its own event loop,
asyncpg pool and SMTP connections, made on its first task (after the fork) and closed when
the child exits.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown

from activities.email import EmailActivities
from offload.db import Pool, create_pool
from offload.models import EmailJob
from offload.settings import Settings


def make_app(redis_url: str) -> Celery:
    """The app of the worker and of the benchmark that sends to it: Redis as broker and backend."""
    return Celery("offload-bench", broker=redis_url, backend=redis_url)


app = make_app(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


@dataclass
class Child:
    """What one worker child sends with; made lazily because the fork must come first."""

    loop: asyncio.AbstractEventLoop
    pool: Pool | None = None
    emails: EmailActivities | None = None

    async def deliver(self, job: dict[str, Any]) -> str:
        if self.emails is None:
            settings = Settings()
            self.pool = await create_pool(settings, max_size=2)
            self.emails = EmailActivities(
                settings, self.pool, keep_connections=settings.smtp_max_connections
            )
        email = EmailJob.model_validate(job)
        sent = await self.emails.deliver(email, workflow_id=f"celery-{email.idempotency_key}")
        return sent.message_id

    async def close(self) -> None:
        if self.emails is not None:
            await self.emails.close()
        if self.pool is not None:
            await self.pool.close()


_child: Child | None = None


def child() -> Child:
    """This process's one `Child`: every task reuses its loop, pool and kept connections."""
    global _child
    if _child is None:
        _child = Child(asyncio.new_event_loop())
    return _child


@app.task(name="bench.send_email")
def send_email(job: dict[str, Any]) -> str:
    """Deliver `job` (an `EmailJob` as JSON); the result is its `Message-ID`."""
    sender = child()
    return sender.loop.run_until_complete(sender.deliver(job))


@worker_process_shutdown.connect
def close_child(**_: Any) -> None:
    """Say QUIT to the sink and close the pool, so a stopped worker leaves no half-open peers."""
    global _child
    if _child is not None:
        sender, _child = _child, None
        sender.loop.run_until_complete(sender.close())
        sender.loop.close()
