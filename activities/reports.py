"""Report activities: plan a report's chunks, aggregate one chunk page by page, finalise."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from offload.db import QUERIES, Pool
from offload.models import (
    ReportChunk,
    ReportChunkInput,
    ReportChunkResult,
    ReportCursor,
    ReportFinalizeInput,
    ReportJob,
    ReportPlan,
    ReportResult,
)
from offload.settings import Settings

log = logging.getLogger(__name__)

CSV_HEADER = ("day", "property", "new_leads", "average_score", "top_source")
TOTAL = "total"
CENT = Decimal("0.01")

# (day, property, source) -> [leads, score_sum]
Cells = dict[tuple[str, str, str], list[int]]


def day_start(day: date) -> datetime:
    """Midnight UTC of `day`: reports count days in UTC."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def split_window(start: datetime, end: datetime, parts: int) -> list[ReportChunk]:
    """`[start, end)` cut into `parts` chunks of equal duration."""
    span = (end - start) / parts
    bounds = [start + span * i for i in range(parts)] + [end]
    return [ReportChunk(index=i, start=bounds[i], end=bounds[i + 1]) for i in range(parts)]


def average(score_sum: int, leads: int) -> Decimal:
    """The average score with two places, rounded half up (as PostgreSQL's `round`)."""
    return (Decimal(score_sum) / Decimal(leads)).quantize(CENT, rounding=ROUND_HALF_UP)


def top(counts: dict[str, int]) -> str:
    """The source with the most leads; ties go to the first in alphabetical order."""
    return min(counts, key=lambda source: (-counts[source], source))


def add_cells(into: Cells, cells: Iterable[tuple[str, str, str, int, int] | list[object]]) -> None:
    for day, prop, source, leads, score_sum in cells:
        cell = into.setdefault((str(day), str(prop), str(source)), [0, 0])
        cell[0] += int(leads)  # type: ignore[call-overload]
        cell[1] += int(score_sum)  # type: ignore[call-overload]


def report_lines(cells: Cells) -> tuple[list[tuple[str, str, int, str, str]], ReportResult]:
    """The CSV lines (per day and property, then the total) and the totals of `cells`."""
    by_day_property: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(dict)
    sources: dict[str, int] = defaultdict(int)
    total_leads = total_score = 0
    for (day, prop, source), (leads, score_sum) in cells.items():
        by_day_property[(day, prop)][source] = [leads, score_sum]
        sources[source] += leads
        total_leads += leads
        total_score += score_sum
    lines = []
    for (day, prop), per_source in sorted(by_day_property.items()):
        leads = sum(v[0] for v in per_source.values())
        score_sum = sum(v[1] for v in per_source.values())
        best = top({s: v[0] for s, v in per_source.items()})
        lines.append((day, prop, leads, str(average(score_sum, leads)), best))
    result = ReportResult(
        report_id="",
        file="",
        total_leads=total_leads,
        average_score=str(average(total_score, total_leads)) if total_leads else "0.00",
        top_source=top(sources) if sources else "",
        days=len({day for day, _ in by_day_property}),
        lines=len(lines),
    )
    return lines, result


def write_csv(
    path: Path, lines: list[tuple[str, str, int, str, str]], totals: ReportResult
) -> None:
    """Write the report file whole or not at all: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    with partial.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        writer.writerows(lines)
        writer.writerow((TOTAL, "", totals.total_leads, totals.average_score, totals.top_source))
    os.replace(partial, path)


class ReportActivities:
    """Activities of the report job; the worker builds one with its settings and pool."""

    def __init__(self, settings: Settings, pool: Pool) -> None:
        self.settings = settings
        self.pool = pool

    def report_file(self, report_id: str) -> Path:
        return (self.settings.data_dir / "reports" / f"{report_id}.csv").resolve()

    @activity.defn
    async def plan_report(self, job: ReportJob) -> ReportPlan:
        """Cut the report's window into chunks of about `chunk_rows` leads each.

        Raises:
            ApplicationError: `UnknownUser` (non-retryable) when the agent does not exist.
        """
        agent = await self.pool.fetchrow(QUERIES.find_agent, job.user_id)
        if agent is None:
            raise ApplicationError(
                f"no agent with id {job.user_id}", type="UnknownUser", non_retryable=True
            )
        start, end = day_start(job.start), day_start(job.end + timedelta(days=1))
        estimated = int(
            await self.pool.fetchval(QUERIES.count_report_leads, job.user_id, start, end)
        )
        chunk_rows = job.chunk_rows or self.settings.report_chunk_rows
        parts = max(1, math.ceil(estimated / chunk_rows))
        chunks = split_window(start, end, parts)
        await self.pool.execute(
            QUERIES.upsert_report_started,
            job.report_id,
            job.user_id,
            job.start,
            job.end,
            job.workflow_id,
            len(chunks),
        )
        log.info("report %s: %d chunk(s), about %d leads", job.report_id, len(chunks), estimated)
        return ReportPlan(
            chunks=chunks,
            estimated_rows=estimated,
            agent_name=agent["name"],
            agent_email=agent["email"],
        )

    @activity.defn
    async def aggregate_report_chunk(self, task: ReportChunkInput) -> ReportChunkResult:
        """Aggregate one chunk with keyset pagination, heartbeating the cursor after every page.

        A retried attempt starts from the last heartbeat's cursor and cells, so a worker
        killed mid-chunk re-reads at most the pages after its last recorded heartbeat (one,
        when pages take longer than OFFLOAD_REPORT_HEARTBEAT_THROTTLE_SECONDS).
        """
        info = activity.info()
        chunk = task.chunk
        where = f"report {task.report_id} chunk {chunk.index}"
        if info.heartbeat_details:
            cursor = ReportCursor.model_validate(info.heartbeat_details[0])
            log.info("%s resumes after row %d (attempt %d)", where, cursor.rows, info.attempt)
        else:
            cursor = ReportCursor(after_created_at=chunk.start)
            log.info("%s starts (attempt %d)", where, info.attempt)
        resumed_from = cursor.rows
        cells: Cells = {}
        add_cells(cells, cursor.cells)
        page_size = self.settings.report_page_size
        while True:
            page = await self.pool.fetch(
                QUERIES.report_page,
                task.user_id,
                cursor.after_created_at,
                cursor.after_id,
                chunk.end,
                page_size,
            )
            if not page:
                break
            add_cells(
                cells,
                (
                    (r["day"].isoformat(), r["property"], r["source"], r["leads"], r["score_sum"])
                    for r in page
                ),
            )
            cursor = ReportCursor(
                after_created_at=page[0]["last_created_at"],
                after_id=page[0]["last_id"],
                rows=cursor.rows + page[0]["page_rows"],
                pages=cursor.pages + 1,
                cells=[(*key, *value) for key, value in cells.items()],
            )
            log.debug("%s read rows up to %d", where, cursor.rows)
            activity.heartbeat(cursor)
            if page[0]["page_rows"] < page_size:
                break
            if self.settings.report_page_pause_seconds:
                await asyncio.sleep(self.settings.report_page_pause_seconds)
        await self.pool.execute(
            QUERIES.upsert_report_chunk,
            task.report_id,
            chunk.index,
            chunk.start,
            chunk.end,
            cursor.rows,
            cursor.pages,
            json.dumps([[*key, *value] for key, value in cells.items()]),
            info.attempt,
            resumed_from,
        )
        log.info("%s done: %d rows in %d page(s)", where, cursor.rows, cursor.pages)
        return ReportChunkResult(
            index=chunk.index,
            rows=cursor.rows,
            pages=cursor.pages,
            attempt=info.attempt,
            resumed_from_rows=resumed_from,
        )

    @activity.defn
    async def finalize_report(self, task: ReportFinalizeInput) -> ReportResult:
        """Merge the stored chunks into the CSV file and the `reports` row.

        Raises:
            ApplicationError: `MissingChunks` (non-retryable) when a chunk was never stored.
        """
        stored = await self.pool.fetch(QUERIES.report_chunk_cells, task.report_id)
        if len(stored) != task.chunks:
            raise ApplicationError(
                f"report {task.report_id}: {len(stored)} of {task.chunks} chunks stored",
                type="MissingChunks",
                non_retryable=True,
            )
        cells: Cells = {}
        for row in stored:
            add_cells(cells, json.loads(row["cells"]))
        lines, totals = report_lines(cells)
        path = self.report_file(task.report_id)
        await asyncio.to_thread(write_csv, path, lines, totals)
        await self.pool.execute(
            QUERIES.finish_report,
            task.report_id,
            totals.total_leads,
            Decimal(totals.average_score),
            totals.top_source,
            str(path),
        )
        log.info("report %s: %d lines written", task.report_id, len(lines))
        return totals.model_copy(
            update={"report_id": task.report_id, "file": str(path), "chunks": task.chunks}
        )
