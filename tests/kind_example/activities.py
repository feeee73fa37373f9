"""The kind's activity (in Offload: `activities/ping.py`): the side effect, on a class the
worker builds once with its dependencies."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from offload.db import Pool
from offload.settings import Settings
from tests.kind_example.models import PingJob, PingResult

# Hosts that refuse pings for good. A test changes it to make a job fail, then heal.
UNREACHABLE: set[str] = set()


class PingActivities:
    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = pool

    @activity.defn
    async def ping_host(self, job: PingJob) -> PingResult:
        """Answer for `job.host`; an unreachable host is a permanent failure (no retry heals it)."""
        if job.host in UNREACHABLE:
            raise ApplicationError(
                f"host {job.host} is unreachable", type="HostUnreachable", non_retryable=True
            )
        answer = await self.pool.fetchval("SELECT 'pong from ' || $1::text", job.host)
        return PingResult(host=job.host, answer=str(answer))
