"""The API's marks of started outbox rows: written together, one statement for a burst.

When the API has started a committed row's job it marks the row, so the relay leaves it
alone. Starts complete in bursts (a busy Temporal server answers many at once), and one
UPDATE each then came as a burst of statements on the database that the next requests'
transactions queued behind (docs/performance.md, "POST /leads p99").
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import pytest
from prometheus_client import generate_latest

from api.metrics import ApiMetrics
from api.started_marks import StartedMarks
from offload.db import Pool
from tests.api import metric_samples


class CountingPool:
    """The real pool, counting the statements sent through it."""

    def __init__(self, pool: Pool, *, fail: bool = False) -> None:
        self.pool = pool
        self.fail = fail
        self.statements: list[str] = []

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        self.statements.append(query)
        if self.fail:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return await self.pool.execute(query, *args, **kwargs)


async def pending_rows(pool: Pool, count: int) -> list[str]:
    """`count` committed outbox rows not yet started; their workflow ids."""
    ids = [f"email-marks-{n}" for n in range(count)]
    for workflow_id in ids:
        await pool.execute(
            "INSERT INTO outbox (kind, workflow_id, payload) VALUES ('email', $1, '{}')",
            workflow_id,
        )
    return ids


async def started(pool: Pool) -> dict[str, int]:
    """The attempts of each row marked started, by workflow id."""
    rows = await pool.fetch("SELECT workflow_id, attempts FROM outbox WHERE started_at IS NOT NULL")
    return {row["workflow_id"]: row["attempts"] for row in rows}


def counted(metrics: ApiMetrics, name: str) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        labels.get("reason", "done"): value
        for labels, value in metric_samples(text, name)
        if labels.get("task") == "outbox_mark"
    }


def marks_of(pool: Pool | CountingPool, metrics: ApiMetrics, **kwargs: Any) -> StartedMarks:
    return StartedMarks(cast(Pool, pool), metrics, timeout=5.0, **kwargs)


async def test_marks_of_starts_that_complete_together_are_one_statement(pool: Pool) -> None:
    ids = await pending_rows(pool, 20)
    counting = CountingPool(pool)
    metrics = ApiMetrics()
    marks = marks_of(counting, metrics)

    for workflow_id in ids:
        marks.add(workflow_id)
    await marks.close()

    assert len(counting.statements) == 1, counting.statements
    assert await started(pool) == dict.fromkeys(ids, 1)
    assert counted(metrics, "offload_api_after_response_done_total") == {"done": 20}


async def test_a_mark_added_while_one_is_written_goes_in_the_next_statement(pool: Pool) -> None:
    first, *rest = await pending_rows(pool, 6)
    counting = CountingPool(pool)
    marks = marks_of(counting, ApiMetrics())

    marks.add(first)
    # One quiet start is written at once, not held back for company.
    await asyncio.sleep(0)
    assert len(counting.statements) == 1
    for workflow_id in rest:
        marks.add(workflow_id)
    await marks.close()

    assert len(counting.statements) == 2
    assert await started(pool) == dict.fromkeys([first, *rest], 1)


async def test_a_row_already_started_by_the_relay_is_not_counted_again(pool: Pool) -> None:
    [workflow_id] = await pending_rows(pool, 1)
    await pool.execute(
        "UPDATE outbox SET started_at = now(), attempts = 1 WHERE workflow_id = $1", workflow_id
    )
    marks = marks_of(pool, ApiMetrics())

    marks.add(workflow_id)
    await marks.close()

    assert await started(pool) == {workflow_id: 1}


async def test_a_failed_write_loses_its_marks_only_and_is_counted(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    ids = await pending_rows(pool, 3)
    broken = CountingPool(pool, fail=True)
    metrics = ApiMetrics()
    marks = marks_of(broken, metrics)

    marks.add(ids[0])
    marks.add(ids[1])
    await marks.close()
    broken.fail = False
    marks.add(ids[2])
    await marks.close()

    # The lost marks leave their rows to the relay, whose start of a started job is a no-op.
    assert await started(pool) == {ids[2]: 1}
    assert counted(metrics, "offload_api_after_response_failures_total") == {"error": 2}
    assert counted(metrics, "offload_api_after_response_done_total") == {"done": 1}
    assert "ConnectionDoesNotExistError" in caplog.text
    assert not any(workflow_id in caplog.text for workflow_id in ids)


async def test_marks_past_the_bound_are_dropped_and_counted(pool: Pool) -> None:
    ids = await pending_rows(pool, 5)
    metrics = ApiMetrics()
    marks = marks_of(pool, metrics, max_pending=3)

    for workflow_id in ids:
        marks.add(workflow_id)
    await marks.close()

    assert await started(pool) == dict.fromkeys(ids[:3], 1)
    assert counted(metrics, "offload_api_after_response_failures_total") == {"overloaded": 2}
