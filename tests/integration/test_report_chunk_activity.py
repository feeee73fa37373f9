"""Report activities in an ActivityEnvironment: the plan's chunks, a chunk's heartbeats, cells."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import date, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.reports import ReportActivities, day_start
from offload.db import Pool
from offload.models import ReportChunk, ReportChunkInput, ReportCursor, ReportJob
from offload.settings import Settings
from tests.reports import seed_leads

START, END = date(2025, 10, 1), date(2025, 10, 31)
PAGE = 40


def chunk_input() -> ReportChunkInput:
    chunk = ReportChunk(index=0, start=day_start(START), end=day_start(END + timedelta(days=1)))
    return ReportChunkInput(report_id="unit", user_id=1, chunk=chunk)


async def prepared(pool: Pool, settings: Settings) -> ReportActivities:
    await seed_leads(pool, leads=2000, agents=1)
    await pool.execute(
        "INSERT INTO reports (report_id, user_id, start_day, end_day, workflow_id)"
        " VALUES ('unit', 1, $1, $2, 'report-unit')",
        START,
        END,
    )
    return ReportActivities(settings.model_copy(update={"report_page_size": PAGE}), pool)


async def stored_cells(pool: Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT day, property, source, leads, score_sum FROM report_cells"
        " WHERE report_id = 'unit' ORDER BY day, property, source"
    )
    return [tuple(r) for r in rows]


async def test_every_page_heartbeats_its_cursor_and_the_cells_go_to_postgres(
    pool: Pool, settings: Settings
) -> None:
    activities = await prepared(pool, settings)
    beats: list[ReportCursor] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details[0])

    result = await env.run(activities.aggregate_report_chunk, chunk_input())

    assert result.rows > 2 * PAGE
    assert len(beats) == result.pages == math.ceil(result.rows / PAGE)
    assert [b.rows for b in beats] == [min(PAGE * (i + 1), result.rows) for i in range(len(beats))]
    # The cursor moves forward: (created_at, id) of each page's last row.
    cursors = [(b.after_created_at, b.after_id) for b in beats]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    # A heartbeat is the cursor and counters, however many cells: those are in PostgreSQL.
    assert all(b.cells == [] and len(b.model_dump_json()) < 200 for b in beats)
    cells = await stored_cells(pool)
    assert sum(int(str(c[3])) for c in cells) == result.rows


async def test_a_retry_after_a_crash_resumes_from_the_stored_cursor_and_counts_no_page_twice(
    pool: Pool, settings: Settings
) -> None:
    activities = await prepared(pool, settings)
    whole = await ActivityEnvironment().run(activities.aggregate_report_chunk, chunk_input())
    whole_cells = await stored_cells(pool)
    await pool.execute("DELETE FROM report_cells")
    await pool.execute("DELETE FROM report_chunk_progress")
    await pool.execute("DELETE FROM report_chunks")

    class Crash(Exception):
        pass

    def crash_after_two_pages(*details: Any) -> None:
        if details[0].pages == 2:
            raise Crash

    first = ActivityEnvironment()
    first.on_heartbeat = crash_after_two_pages
    with pytest.raises(Crash):
        await first.run(activities.aggregate_report_chunk, chunk_input())

    # The retry: the server hands back no heartbeat (none was recorded); PostgreSQL has two pages.
    resumed_beats: list[Any] = []
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    retry.on_heartbeat = lambda *details: resumed_beats.append(details[0])
    resumed = await retry.run(activities.aggregate_report_chunk, chunk_input())

    assert resumed.resumed_from_rows == 2 * PAGE
    assert resumed.attempt == 2
    # Only the pages after the cursor were read again.
    assert len(resumed_beats) == whole.pages - 2
    assert resumed_beats[0].rows == 3 * PAGE
    assert resumed.rows == whole.rows
    assert await stored_cells(pool) == whole_cells


async def test_the_plan_sizes_chunks_from_the_estimate_and_they_cover_the_range(
    pool: Pool, settings: Settings
) -> None:
    activities = await prepared(pool, settings)
    job = ReportJob(report_id="unit", user_id=1, start=START, end=END, chunk_rows=40)
    counted = await pool.fetchval(
        "SELECT count(*) FROM leads WHERE agent_id = 1 AND created_at >= $1 AND created_at < $2",
        day_start(START),
        day_start(END + timedelta(days=1)),
    )

    plan = await ActivityEnvironment().run(activities.plan_report, job)

    # The planner's estimate, not a count: close to it on an analysed table.
    assert abs(plan.estimated_rows - counted) <= counted * 0.2, (plan.estimated_rows, counted)
    assert len(plan.chunks) == math.ceil(plan.estimated_rows / 40)
    # Whatever the estimate, the chunks cover the range end to end, with no gap or overlap.
    assert plan.chunks[0].start == day_start(START)
    assert plan.chunks[-1].end == day_start(END + timedelta(days=1))
    assert all(a.end == b.start for a, b in itertools.pairwise(plan.chunks))
    assert (plan.agent_email, plan.agent_name) != ("", "")
    chunks_total = await pool.fetchval("SELECT chunks_total FROM reports WHERE report_id = 'unit'")
    assert chunks_total == len(plan.chunks)


async def test_the_plan_of_an_unknown_agent_fails_for_good(pool: Pool, settings: Settings) -> None:
    activities = await prepared(pool, settings)
    job = ReportJob(report_id="unit", user_id=99, start=START, end=END)

    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(activities.plan_report, job)

    assert failed.value.type == "UnknownUser" and failed.value.non_retryable
