"""The Celery peer of `bench.peers`: one task that delivers the email as Offload's activity does.

`celery -A bench.celery_peer worker` runs it; each worker child keeps its own event loop,
asyncpg pool and SMTP connections, made on its first task (after the fork).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from celery import Celery

from activities.email import EmailActivities
from offload.db import create_pool
from offload.models import EmailJob
from offload.settings import Settings


def make_app(redis_url: str) -> Celery:
    return Celery("offload-bench", broker=redis_url, backend=redis_url)


app = make_app(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
_child: dict[str, Any] = {}


async def _deliver(job: dict[str, Any]) -> str:
    if "emails" not in _child:
        settings = Settings()
        pool = await create_pool(settings, max_size=2)
        _child["emails"] = EmailActivities(
            settings, pool, keep_connections=settings.smtp_max_connections
        )
    email = EmailJob.model_validate(job)
    emails: EmailActivities = _child["emails"]
    sent = await emails.deliver(email, workflow_id=f"celery-{email.idempotency_key}")
    return sent.message_id


@app.task(name="bench.send_email")
def send_email(job: dict[str, Any]) -> str:
    loop = _child.setdefault("loop", asyncio.new_event_loop())
    return loop.run_until_complete(_deliver(job))
