"""Report activities: plan a report's chunks, aggregate one chunk page by page, finalise."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import os
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
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


def day_start(day: date) -> datetime:
    """Midnight UTC of `day`: reports count days in UTC."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def split_window(start: datetime, end: datetime, parts: int) -> list[ReportChunk]:
    """`[start, end)` cut into `parts` chunks of equal duration."""
    span = (end - start) / parts
    bounds = [start + span * i for i in range(parts)] + [end]
    return [ReportChunk(index=i, start=bounds[i], end=bounds[i + 1]) for i in range(parts)]


Line = tuple[str, str, int, str, str]


def write_csv(path: Path, lines: list[Line], totals: ReportResult) -> None:
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

        The leads are not counted but estimated by PostgreSQL's planner (a count would scan
        them all once more); an estimate off the mark makes chunks larger or smaller, never
        a row missed or counted twice, since the chunks cover the window by time.

        Raises:
            ApplicationError: `UnknownUser` (non-retryable) when the agent does not exist.
        """
        agent = await self.pool.fetchrow(QUERIES.find_agent, job.user_id)
        if agent is None:
            raise ApplicationError(
                f"no agent with id {job.user_id}", type="UnknownUser", non_retryable=True
            )
        start, end = day_start(job.start), day_start(job.end + timedelta(days=1))
        explained = await self.pool.fetchval(QUERIES.estimate_report_leads, job.user_id, start, end)
        estimated = int(json.loads(explained)[0]["Plan"]["Plan Rows"])
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
        """Aggregate one chunk with keyset pagination, storing each page's cells as it goes.

        Each page's cells and the cursor after it are written to PostgreSQL in one
        transaction (`report_chunk_progress`, `report_cells`); the heartbeat carries the
        cursor and counters only, so it stays small however many distinct cells the chunk
        has. A retried attempt resumes from the stored cursor: a worker killed mid-chunk
        re-reads at most the page it was reading, and no page is counted twice.
        """
        info = activity.info()
        chunk = task.chunk
        where = f"report {task.report_id} chunk {chunk.index}"
        stored = await self.pool.fetchrow(
            QUERIES.begin_report_chunk, task.report_id, chunk.index, chunk.start
        )
        assert stored is not None
        cursor = ReportCursor(
            after_created_at=stored["after_created_at"],
            after_id=stored["after_id"],
            rows=stored["rows_read"],
            pages=stored["pages"],
        )
        if cursor.pages:
            log.info("%s resumes after row %d (attempt %d)", where, cursor.rows, info.attempt)
        else:
            log.info("%s starts (attempt %d)", where, info.attempt)
        resumed_from = cursor.rows
        page_size = self.settings.report_page_size
        while True:
            moved = await self.aggregate_page(task, page_size)
            if moved is None:
                break
            page_rows = moved.rows - cursor.rows
            cursor = moved
            log.debug("%s read rows up to %d", where, cursor.rows)
            activity.heartbeat(cursor)
            if page_rows < page_size:
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
            # The cells are in `report_cells`; this column holds those of older chunks only.
            "[]",
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

    async def aggregate_page(self, task: ReportChunkInput, size: int) -> ReportCursor | None:
        """Add the next page's cells to the chunk's and move its cursor, in one transaction.

        The page starts at the stored cursor, read under its row lock: two attempts of one
        chunk (a retry while a lost worker still runs) take turns, and neither counts a
        page twice. None when the chunk has no rows left.
        """
        chunk = task.chunk
        async with self.pool.acquire() as conn, conn.transaction():
            at = await conn.fetchrow(QUERIES.lock_report_chunk, task.report_id, chunk.index)
            assert at is not None
            last = await conn.fetchrow(
                QUERIES.aggregate_report_page,
                task.report_id,
                chunk.index,
                task.user_id,
                at["after_created_at"],
                at["after_id"],
                chunk.end,
                size,
            )
            if last is None:
                return None
            moved = await conn.fetchrow(
                QUERIES.advance_report_chunk,
                task.report_id,
                chunk.index,
                last["last_created_at"],
                last["last_id"],
                last["page_rows"],
            )
        assert moved is not None
        return ReportCursor(
            after_created_at=moved["after_created_at"],
            after_id=moved["after_id"],
            rows=moved["rows_read"],
            pages=moved["pages"],
        )

    @activity.defn
    async def finalize_report(self, task: ReportFinalizeInput) -> ReportResult:
        """Merge the stored chunks into the CSV file and the `reports` row.

        Raises:
            ApplicationError: `MissingChunks` (non-retryable) when a chunk was never stored.
        """
        stored = await self.pool.fetchval(QUERIES.count_report_chunks, task.report_id)
        if stored != task.chunks:
            raise ApplicationError(
                f"report {task.report_id}: {stored} of {task.chunks} chunks stored",
                type="MissingChunks",
                non_retryable=True,
            )
        rows = await self.pool.fetch(QUERIES.report_lines, task.report_id)
        *lines, total = [
            (r["day"], r["property"], r["leads"], str(r["average_score"]), r["top_source"])
            for r in rows
        ]
        path = self.report_file(task.report_id)
        totals = ReportResult(
            report_id=task.report_id,
            file=str(path),
            chunks=task.chunks,
            total_leads=total[2],
            average_score=total[3],
            top_source=total[4],
            days=len({line[0] for line in lines}),
            lines=len(lines),
        )
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
        return totals
