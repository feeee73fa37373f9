"""What `offload stats` shows: queue depth, jobs by status, dead letters, schedules, latency.

`collect_stats` asks Temporal (DescribeTaskQueue with stats, visibility counts, the
dead-letter workflow's `summary` query, the schedules) and scrapes the worker's metrics
endpoint; `render_table` turns the answer into what a person reads, `--json` into what a
script reads.
"""

from __future__ import annotations

import asyncio
import math
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType, WorkflowExecutionStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from offload import kinds, queues
from offload.codec import encryption_codec, held_key_ids, rotation_gaps
from offload.settings import Settings
from offload.tables import table
from offload.temporal import client_identity

CLOSED_STATUSES = ("Completed", "Failed", "TimedOut", "Terminated", "Canceled")

# Histograms of the worker's endpoint, by the name `offload stats` shows them under.
LATENCY_METRICS = {
    "workflow schedule-to-start": "temporal_workflow_task_schedule_to_start_latency_seconds",
    "activity schedule-to-start": "temporal_activity_schedule_to_start_latency_seconds",
    "activity execution": "temporal_activity_execution_latency_seconds",
    # The fast path's first attempt of an email (a local activity in the workflow worker).
    "local activity execution": "temporal_local_activity_execution_latency_seconds",
    "job enqueue-to-done": "offload_job_enqueue_to_done_latency_seconds",
}


class QueueStats(BaseModel):
    """One task queue and type, as DescribeTaskQueue reports it."""

    queue: str
    type: str
    backlog: int
    backlog_age_seconds: float
    add_rate: float
    dispatch_rate: float
    pollers: int
    # The Temporal identity of each poller: `pid@host`, and `keys=...` when it encrypts.
    poller_identities: list[str] = []


class JobCounts(BaseModel):
    """The jobs of one kind: running now, and closed in the last hour by status."""

    kind: str
    running: int
    closed_last_hour: dict[str, int]


class ScheduleStats(BaseModel):
    id: str
    paused: bool
    next_run: datetime | None
    last_run: datetime | None
    last_result: str | None


class LatencyStats(BaseModel):
    """Percentiles (seconds) of one histogram, over everything the worker has seen."""

    name: str
    count: int
    p50: float | None
    p95: float | None
    p99: float | None


class DeadLetterStats(BaseModel):
    """Dead-letter entries by job kind and status (`dead` waits for an operator)."""

    available: bool
    by_kind: dict[str, dict[str, int]] = {}
    note: str = ""


class KeyStats(BaseModel):
    """The encryption key ids of this process and of each worker polling Offload's queues.

    `gaps` says what a rolling key rotation would break now: a key current in one process
    that another cannot decrypt. Temporal lists a poller for a few minutes after it stops.
    """

    this_process: str
    workers: dict[str, list[str]]
    gaps: list[str]


class Stats(BaseModel):
    collected_at: datetime
    queues: list[QueueStats]
    keys: KeyStats | None = None
    jobs: list[JobCounts]
    dead_letters: DeadLetterStats
    schedules: list[ScheduleStats]
    latency: list[LatencyStats]
    metrics_source: str


def job_kinds() -> list[str]:
    """The workflow types of the job kinds (not long-lived ones like the dead-letter queue)."""
    return [kind.workflow_type for kind in kinds.KINDS]


async def queue_stats(client: Client, settings: Settings) -> list[QueueStats]:
    """Backlog, rates and pollers of each Offload queue: workflow tasks, then activity tasks."""
    found = []
    for queue in queues.BY_KIND.values():
        name = queues.named(queue, settings.task_queue_prefix)
        kind = (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
            if queue == queues.WORKFLOWS
            else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        )
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=name),
                task_queue_type=kind,
                report_stats=True,
            )
        )
        stats = response.stats
        found.append(
            QueueStats(
                queue=name,
                type="workflow" if queue == queues.WORKFLOWS else "activity",
                backlog=stats.approximate_backlog_count,
                backlog_age_seconds=stats.approximate_backlog_age.ToTimedelta().total_seconds(),
                add_rate=round(stats.tasks_add_rate, 3),
                dispatch_rate=round(stats.tasks_dispatch_rate, 3),
                pollers=len(response.pollers),
                poller_identities=sorted(poller.identity for poller in response.pollers),
            )
        )
    return found


def key_stats(settings: Settings, found: list[QueueStats]) -> KeyStats | None:
    """Which keys each worker holds, read from the pollers' identities; None unencrypted."""
    codec = encryption_codec(settings)
    holders = {
        identity: keys
        for queue in found
        for identity in queue.poller_identities
        if (keys := held_key_ids(identity)) is not None
    }
    if codec is None and not holders:
        return None
    if codec is not None:
        holders[f"this process ({client_identity(settings)})"] = [
            codec.key_id,
            *codec.decrypt_only_ids,
        ]
    return KeyStats(
        this_process=codec.describe() if codec else "unencrypted (OFFLOAD_ENCRYPTION_KEY unset)",
        workers={who: keys for who, keys in holders.items() if not who.startswith("this ")},
        gaps=rotation_gaps(holders),
    )


async def job_counts(client: Client, settings: Settings, now: datetime) -> list[JobCounts]:
    """Per job kind: running, and completed/failed/... in the hour before `now` (visibility)."""
    workflow_queue = queues.named(queues.WORKFLOWS, settings.task_queue_prefix)
    hour_ago = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = []
    for kind in job_kinds():
        base = f"WorkflowType = '{kind}' AND TaskQueue = '{workflow_queue}'"
        running = await client.count_workflows(f"{base} AND ExecutionStatus = 'Running'")
        closed = {}
        for status in CLOSED_STATUSES:
            found = await client.count_workflows(
                f"{base} AND ExecutionStatus = '{status}' AND CloseTime > '{hour_ago}'"
            )
            if found.count:
                closed[status.lower()] = found.count
        counts.append(JobCounts(kind=kind, running=running.count, closed_last_hour=closed))
    return counts


async def dead_letter_stats(client: Client, settings: Settings) -> DeadLetterStats:
    """The dead-letter queue by kind, from the `summary` query of its workflow."""
    workflow_id = queues.dead_letters_id(settings.task_queue_prefix)
    try:
        summary: Any = await client.get_workflow_handle(workflow_id).query("summary")
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return DeadLetterStats(available=True, note="empty: no job has been dead-lettered")
        return DeadLetterStats(available=False, note=f"summary query failed: {err.message}")
    except Exception as err:
        # A dead-letter workflow that answers no `summary` (an older one, or none running).
        return DeadLetterStats(available=False, note=f"summary query failed: {err}")
    return DeadLetterStats(available=True, by_kind=summary_by_kind(summary))


def summary_by_kind(summary: Any) -> dict[str, dict[str, int]]:
    """Entries per job kind and status from the dead-letter workflow's `summary`.

    The summary is `DeadLetterSummary` as JSON: `{"counts": {kind: {status: n}}, ...}`.
    """
    if isinstance(summary, BaseModel):
        summary = summary.model_dump()
    counts = summary.get("counts") if isinstance(summary, dict) else None
    if not isinstance(counts, dict):
        return {}
    return {
        str(kind): {str(status): int(n) for status, n in by_status.items()}
        for kind, by_status in counts.items()
        if isinstance(by_status, dict)
    }


async def schedule_stats(client: Client, settings: Settings) -> list[ScheduleStats]:
    """Each schedule (under the queue prefix, if one is set): state, next run, last result."""
    found = []
    async for listed in await client.list_schedules():
        if not listed.id.startswith(settings.task_queue_prefix):
            continue
        description = await client.get_schedule_handle(listed.id).describe()
        info = description.raw_description.info
        last_run = last_result = None
        if info.recent_actions:
            last = info.recent_actions[-1]
            last_run = last.actual_time.ToDatetime(tzinfo=UTC)
            status = WorkflowExecutionStatus.Name(last.start_workflow_status)
            last_result = status.removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()
        next_runs = description.info.next_action_times
        found.append(
            ScheduleStats(
                id=listed.id,
                paused=description.schedule.state.paused,
                next_run=next_runs[0] if next_runs else None,
                last_run=last_run,
                last_result=last_result,
            )
        )
    return sorted(found, key=lambda s: s.id)


def scrape(url: str, timeout: float = 2.0) -> str | None:
    """The text of a Prometheus endpoint, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text: str = response.read().decode()
            return text
    except (urllib.error.URLError, OSError):
        return None


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The `q` quantile of cumulative `(upper bound, count)` buckets, as Prometheus computes it."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def latency_stats(text: str) -> list[LatencyStats]:
    """Percentiles of the latency histograms in a scrape, summed over all their labels."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[sample.name.removesuffix("_bucket")][bound] += sample.value
    found = []
    for label, metric in LATENCY_METRICS.items():
        cumulative = list(buckets.get(metric, {}).items())
        total = int(max((c for _, c in cumulative), default=0))
        quantiles = [
            None if q is None else round(q, 4)
            for q in (histogram_quantile(p, cumulative) for p in (0.5, 0.95, 0.99))
        ]
        found.append(
            LatencyStats(
                name=label, count=total, p50=quantiles[0], p95=quantiles[1], p99=quantiles[2]
            )
        )
    return found


async def collect_stats(client: Client, settings: Settings, metrics_url: str) -> Stats:
    """Everything `offload stats` shows, collected now."""
    now = datetime.now(UTC)
    text = await asyncio.to_thread(scrape, metrics_url) if metrics_url else None
    found = await queue_stats(client, settings)
    return Stats(
        collected_at=now,
        queues=found,
        keys=key_stats(settings, found),
        jobs=await job_counts(client, settings, now),
        dead_letters=await dead_letter_stats(client, settings),
        schedules=await schedule_stats(client, settings),
        latency=latency_stats(text) if text is not None else [],
        metrics_source=metrics_url if text is not None else f"unreachable: {metrics_url}",
    )


def _age(seconds: float) -> str:
    if seconds < 1:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def render_table(stats: Stats) -> str:
    """The stats as a person reads them: one small table per question."""
    out = [f"offload stats at {_when(stats.collected_at)} UTC", "", "task queues"]
    out += table(
        ["queue", "type", "backlog", "oldest", "add/s", "dispatch/s", "pollers"],
        [
            [
                q.queue,
                q.type,
                str(q.backlog),
                _age(q.backlog_age_seconds),
                f"{q.add_rate:g}",
                f"{q.dispatch_rate:g}",
                str(q.pollers),
            ]
            for q in stats.queues
        ],
    )
    out += ["", "jobs (running now; closed in the last hour)"]
    out += table(
        ["kind", "running", "completed", "failed", "other"],
        [
            [
                j.kind,
                str(j.running),
                str(j.closed_last_hour.get("completed", 0)),
                str(j.closed_last_hour.get("failed", 0)),
                str(
                    sum(
                        v for k, v in j.closed_last_hour.items() if k not in ("completed", "failed")
                    )
                ),
            ]
            for j in stats.jobs
        ],
    )
    out += ["", "dead-letter queue"]
    dlq = stats.dead_letters
    if dlq.by_kind:
        out += table(
            ["kind", "dead", "redriven", "discarded"],
            [
                [kind, *(str(counts.get(s, 0)) for s in ("dead", "redriven", "discarded"))]
                for kind, counts in sorted(dlq.by_kind.items())
            ],
        )
    else:
        out.append(dlq.note or "empty")
    out += ["", "schedules"]
    if stats.schedules:
        out += table(
            ["schedule", "state", "next run", "last run", "last result"],
            [
                [
                    s.id,
                    "paused" if s.paused else "active",
                    _when(s.next_run),
                    _when(s.last_run),
                    s.last_result or "-",
                ]
                for s in stats.schedules
            ],
        )
    else:
        out.append("none")
    if stats.keys is not None:
        out += ["", f"encryption keys: this process {stats.keys.this_process}"]
        out += table(
            ["worker", "encrypts with", "also decrypts"],
            [
                [who, keys[0], ", ".join(keys[1:]) or "-"]
                for who, keys in sorted(stats.keys.workers.items())
            ],
        )
        out += [f"rotation: {gap}" for gap in stats.keys.gaps] or [
            "rotation: every process decrypts every current key"
        ]
    out += ["", f"latency (from {stats.metrics_source})"]
    if stats.latency:
        out += table(
            ["measure", "count", "p50", "p95", "p99"],
            [
                [lat.name, str(lat.count), _seconds(lat.p50), _seconds(lat.p95), _seconds(lat.p99)]
                for lat in stats.latency
            ],
        )
    else:
        out.append("no metrics: is a worker running with OFFLOAD_METRICS_ADDRESS?")
    return "\n".join(out)
