"""What the report tests share: seeded leads and the SQL answer a report must equal."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from activities.reports import TOTAL, day_start
from offload.db import QUERIES, Pool
from offload.seed import seed

# A fixed year, so the seeded rows (and their report) are the same on every run.
SEED_END = date(2026, 7, 1)


async def seed_leads(pool: Pool, leads: int = 3000, agents: int = 2) -> None:
    await seed(pool, leads=leads, agents=agents, seed=7, end=SEED_END)


async def sql_report(pool: Pool, user_id: int, start: date, end: date) -> list[list[str]]:
    """The report's lines as one GROUP BY computes them, as the CSV spells them."""
    from datetime import timedelta

    rows = await pool.fetch(
        QUERIES.report_by_sql,
        user_id,
        day_start(start),
        day_start(end + timedelta(days=1)),
    )
    return [
        [r["day"].isoformat(), r["property"], str(r["leads"]), str(r["average_score"]),
         r["top_source"]]
        for r in rows
    ]  # fmt: skip


async def sql_totals(pool: Pool, user_id: int, start: date, end: date) -> list[str]:
    from datetime import timedelta

    row = await pool.fetchrow(
        "SELECT count(*) AS n, round(avg(score)::numeric, 2) AS a,"
        " (SELECT source FROM leads WHERE agent_id = $1 AND created_at >= $2"
        "  AND created_at < $3 GROUP BY source ORDER BY count(*) DESC, source LIMIT 1) AS t"
        " FROM leads WHERE agent_id = $1 AND created_at >= $2 AND created_at < $3",
        user_id,
        day_start(start),
        day_start(end + timedelta(days=1)),
    )
    assert row is not None
    return [TOTAL, "", str(row["n"]), str(row["a"]), row["t"]]


def read_csv(path: str | Path) -> list[list[str]]:
    with Path(path).open(newline="") as f:
        return list(csv.reader(f))
