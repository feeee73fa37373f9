"""Build and run Offload's workers: one Temporal `Worker` per task queue this process polls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import (
    Plugin,
    Replayer,
    ReplayerConfig,
    Worker,
    WorkerConfig,
    WorkflowReplayResult,
)

from activities.dead_letters import DeadLetterActivities
from activities.email import EmailActivities
from offload import kinds as job_kinds
from offload import queues
from offload.db import Pool
from offload.jobs.outbox import OutboxRelay
from offload.settings import Settings
from workers.metrics import JobMetricsInterceptor
from workflows.dead_letters import DeadLetterWorkflow

log = logging.getLogger(__name__)

# A background service of the worker process (the outbox relay): runs until its event is set.
Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def workflows() -> list[type]:
    """Every workflow type Offload runs (each job kind's, and the dead-letter queue's); all of
    them poll `offload-workflows`."""
    return [*(kind.workflow for kind in job_kinds.KINDS), DeadLetterWorkflow]


class CloseOnShutdown(Plugin):
    """Runs `close` once its worker has stopped, after the last activity finished."""

    def __init__(self, close: Callable[[], Awaitable[None]]) -> None:
        self.close = close

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        return config

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        try:
            await next(worker)
        finally:
            await self.close()

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        return config

    def run_replayer(
        self,
        replayer: Replayer,
        histories: AsyncIterator[WorkflowHistory],
        next: Callable[
            [Replayer, AsyncIterator[WorkflowHistory]],
            AbstractAsyncContextManager[AsyncIterator[WorkflowReplayResult]],
        ],
    ) -> AbstractAsyncContextManager[AsyncIterator[WorkflowReplayResult]]:
        return next(replayer, histories)


def activities_by_queue(settings: Settings, pool: Pool) -> dict[str, list[Callable[..., Any]]]:
    """The activities each queue serves (each job kind's and the dead-letter queue's), built
    once with their dependencies."""
    dead_letters = DeadLetterActivities(settings, pool)
    found: dict[str, list[Callable[..., Any]]] = {
        queues.DEFAULT: [
            dead_letters.record_dead_letter,
            dead_letters.store_dead_letters,
            dead_letters.find_dead_letter_refs,
            dead_letters.redrive_dead_letters,
            dead_letters.discard_dead_letters,
        ]
    }
    for kind in job_kinds.KINDS:
        for queue, activities in kind.activities(settings, pool).items():
            found.setdefault(queue, []).extend(activities)
    return found


def build_workers(
    client: Client, settings: Settings, pool: Pool, kinds: Sequence[str]
) -> list[Worker]:
    """The workers for the queue kinds `kinds` (`workflows`, `email`, `reports`, `default`)."""
    unknown = sorted(set(kinds) - set(queues.BY_KIND))
    if unknown:
        raise ValueError(
            f"unknown queue kind(s) {', '.join(unknown)}; known: {', '.join(queues.BY_KIND)}"
        )
    prefix = settings.task_queue_prefix
    grace = settings.worker_grace_period
    activities = activities_by_queue(settings, pool)
    workers = []
    for kind in kinds:
        queue = queues.BY_KIND[kind]
        name = queues.named(queue, prefix)
        # SMTP connections stay open between emails until the worker that sends them stops.
        owners = {getattr(a, "__self__", None) for a in activities.get(queue, [])}
        plugins: list[Plugin] = [
            CloseOnShutdown(owner.close) for owner in owners if isinstance(owner, EmailActivities)
        ]
        if queue == queues.WORKFLOWS:
            workers.append(
                Worker(
                    client,
                    task_queue=name,
                    workflows=workflows(),
                    # Local activities: the first attempt of an email (the fast path).
                    activities=activities.get(queue, []),
                    graceful_shutdown_timeout=grace,
                    interceptors=[JobMetricsInterceptor(k.workflow_type for k in job_kinds.KINDS)],
                    plugins=plugins,
                )
            )
        elif activities.get(queue):
            tuning: dict[str, Any] = {"plugins": plugins}
            if queue == queues.EMAIL:
                # The SMTP provider's rate limit holds across every worker of the queue.
                tuning["max_task_queue_activities_per_second"] = (
                    settings.email_rate_limit_per_second
                )
            if queue == queues.REPORTS:
                tuning["max_concurrent_activities"] = settings.reports_max_concurrent_activities
                # How stale a chunk's resume point may be when its worker dies.
                tuning["max_heartbeat_throttle_interval"] = timedelta(
                    seconds=settings.report_heartbeat_throttle_seconds
                )
            workers.append(
                Worker(
                    client,
                    task_queue=name,
                    activities=activities[queue],
                    graceful_shutdown_timeout=grace,
                    **tuning,
                )
            )
    return workers


def build_services(client: Client, settings: Settings, pool: Pool) -> list[Service]:
    """The background services every worker process runs beside its Temporal workers."""
    return [OutboxRelay(client, settings, pool).run]


async def run_workers(
    workers: Sequence[Worker], stop: asyncio.Event, services: Sequence[Service] = ()
) -> None:
    """Run `workers` and `services` until `stop` is set (or one fails), then stop all.

    Shutdown stops polling at once, lets running activities finish within the grace
    period, and cancels those still running after it. Services get their own stop event,
    set at the same moment, and are awaited.
    """
    runs = [asyncio.create_task(w.run(), name=f"worker {w.task_queue}") for w in workers]
    services_stop = asyncio.Event()
    service_runs = [asyncio.create_task(service(services_stop)) for service in services]
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait(
        [*runs, *service_runs, stopped], return_when=asyncio.FIRST_COMPLETED
    )
    if stopped not in done:
        stopped.cancel()
    log.info("shutting down %d worker(s)", len(workers))
    services_stop.set()
    await asyncio.gather(*(w.shutdown() for w in workers if w.is_running))
    for service, result in zip(
        services, await asyncio.gather(*service_runs, return_exceptions=True), strict=True
    ):
        if isinstance(result, Exception):
            log.error("service %s failed: %s", service, type(result).__name__)
    results = await asyncio.gather(*runs, return_exceptions=True)
    for worker, result in zip(workers, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise RuntimeError(f"worker on {worker.task_queue} failed") from result
