"""The report job end to end: equal to SQL, resumable after SIGKILL, and its CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from datetime import date
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.reports import day_start
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.reports import enqueue_report, new_report_job
from offload.models import ReportJob
from offload.settings import Settings
from tests.harness import offload_process, run_offload
from tests.replay.record_histories import write
from tests.reports import read_csv, seed_leads, sql_report, sql_totals
from workflows.reports import GenerateReportWorkflow

START, END = date(2025, 9, 1), date(2026, 6, 30)


def job_for(settings: Settings, **fields: object) -> ReportJob:
    job = new_report_job(
        settings, report_id=f"r-{uuid.uuid4().hex[:12]}", user_id=1, start=START, end=END
    )
    return job.model_copy(update=fields)


@pytest.mark.usefixtures("worker")
async def test_the_report_equals_one_sql_group_by_cell_for_cell(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    await seed_leads(pool)
    job = job_for(settings, chunk_rows=300)
    handle = await enqueue_report(client, settings, pool, job)
    result = await handle.result()

    lines = read_csv(result.file)
    assert lines[0] == ["day", "property", "new_leads", "average_score", "top_source"]
    assert lines[1:-1] == await sql_report(pool, 1, START, END)
    assert lines[-1] == await sql_totals(pool, 1, START, END)
    assert result.total_leads == int(lines[-1][2]) > 1000
    assert Path(result.file).parent == (settings.data_dir / "reports").resolve()

    progress = await handle.query(GenerateReportWorkflow.progress)
    assert progress.status == "done"
    assert progress.chunks_done == progress.chunks_total >= 4
    assert progress.rows_read == result.total_leads
    assert progress.result == result

    [message] = smtp_sink.messages()
    assert message["To"] == "agent1@example.com"
    assert job.report_id in message["Subject"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and result.file in body.get_content()
    row = await pool.fetchrow("SELECT * FROM reports WHERE report_id = $1", job.report_id)
    assert row is not None and row["status"] == "done" and row["total_leads"] == result.total_leads

    if os.environ.get("OFFLOAD_RECORD_HISTORIES"):
        await write("report", handle)


def chunk_lines(log: str) -> dict[str, list[tuple[int, str, int]]]:
    """From a worker's log: per event kind, (chunk, report, rows) in order."""
    kinds = ("read", "resume", "start", "done")
    found: dict[str, list[tuple[int, str, int]]] = {kind: [] for kind in kinds}
    patterns = {
        "done": r"report (\S+) chunk (\d+) done: (\d+) rows",
        "read": r"report (\S+) chunk (\d+) read rows up to (\d+)",
        "resume": r"report (\S+) chunk (\d+) resumes after row (\d+)",
        "start": r"report (\S+) chunk (\d+) starts()",
    }
    for kind, pattern in patterns.items():
        for report, chunk, rows in re.findall(pattern, log):
            found[kind].append((int(chunk), report, int(rows or 0)))
    return found


def chunk_in_flight(lines: dict[str, list[tuple[int, str, int]]], rows: int) -> int | None:
    """The chunk that has read at least `rows` rows and is not done, once another is done."""
    done = {c for c, _, _ in lines["done"]}
    if not done:
        return None
    reading = {c for c, _, read in lines["read"] if read >= rows} - done
    return min(reading, default=None)


async def test_a_worker_killed_mid_chunk_resumes_from_its_last_heartbeat(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    await seed_leads(pool)
    page = 50
    settings = settings.model_copy(
        update={
            "report_page_size": page,
            "report_page_pause_seconds": 0.3,
            "report_heartbeat_throttle_seconds": 0.1,
            "reports_max_concurrent_activities": 1,
        }
    )
    job = job_for(settings, chunk_rows=400, heartbeat_timeout_seconds=3)
    first_log, second_log = tmp_path / "worker1.log", tmp_path / "worker2.log"
    with first_log.open("wb") as out:
        worker = offload_process(settings, "-v", "worker", stdout=out, stderr=out)
    try:
        handle = await enqueue_report(client, settings, pool, job)
        deadline = time.monotonic() + 60
        # Kill it once a chunk is finished and another is a few pages in. The server hands
        # out the chunks' activity tasks in no guaranteed order, so find which ones.
        while (killed := chunk_in_flight(chunk_lines(first_log.read_text()), 3 * page)) is None:
            assert time.monotonic() < deadline, first_log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        before = chunk_lines(first_log.read_text())
        with second_log.open("wb") as out:
            worker = offload_process(settings, "-v", "worker", stdout=out, stderr=out)
        result = await asyncio.wait_for(handle.result(), 90)
    finally:
        worker.terminate()
        worker.wait(30)
    after = chunk_lines(second_log.read_text())

    read_before = max(rows for c, _, rows in before["read"] if c == killed)
    [(_, _, resumed_at)] = [e for e in after["resume"] if e[0] == killed]
    assert read_before - page <= resumed_at <= read_before, (read_before, resumed_at)
    # The chunks finished before the kill never ran again.
    finished = {c for c, _, _ in before["done"]}
    assert finished and finished.isdisjoint(c for c, _, _ in after["resume"] + after["start"])
    lines = read_csv(result.file)
    assert lines[1:-1] == await sql_report(pool, 1, START, END)
    assert lines[-1] == await sql_totals(pool, 1, START, END)
    stored = await pool.fetchrow(
        "SELECT attempt, resumed_from_rows FROM report_chunks WHERE report_id = $1"
        " AND chunk_index = $2",
        job.report_id,
        killed,
    )
    assert stored is not None and stored["attempt"] == 2
    assert stored["resumed_from_rows"] == resumed_at


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-02-01", "--end", "2026-01-01"], "--end: 2026-01-01 is before start"),
        (["--start", "2024-01-01", "--end", "2026-01-01"], "--end: the range spans 732 days"),
        (["--start", "2026-13-01", "--end", "2026-12-31"], "--start: '2026-13-01' is not a date"),
        (["--start", "2026-01-01", "--end", "2026-01-31", "--user-id", "9"], "--user-id: no agent"),
        (["--start", "9999-12-31", "--end", "9999-12-31"], "--end: 9999-12-31 is after 9999-12-30"),
    ],
)
async def test_report_refuses_bad_input_and_starts_nothing(
    client: Client, settings: Settings, pool: Pool, args: list[str], message: str
) -> None:
    await seed_leads(pool, leads=10, agents=1)
    report_id = f"bad-{uuid.uuid4().hex[:8]}"
    if "--user-id" not in args:
        args = [*args, "--user-id", "1"]
    done = await asyncio.to_thread(run_offload, settings, "report", "--report-id", report_id, *args)
    assert done.returncode == 2, done
    assert message in done.stderr, done.stderr
    with pytest.raises(RPCError):
        await client.get_workflow_handle(f"report-{report_id}").describe()


async def test_a_report_id_reused_with_other_parameters_exits_2_naming_the_existing_ones(
    client: Client, settings: Settings, pool: Pool
) -> None:
    await seed_leads(pool, leads=10, agents=2)
    report_id = f"reused-{uuid.uuid4().hex[:8]}"
    args = ["report", "--report-id", report_id, "--start", "2026-01-01", "--end", "2026-01-31"]
    first = await asyncio.to_thread(run_offload, settings, *args, "--user-id", "1")
    assert first.returncode == 0, first.stderr
    other = await asyncio.to_thread(run_offload, settings, *args, "--user-id", "2")
    assert other.returncode == 2, other
    assert "--report-id: report" in other.stderr, other.stderr
    assert "user_id 1, start 2026-01-01, end 2026-01-31" in other.stderr, other.stderr
    await client.get_workflow_handle(f"report-{report_id}").terminate("test over")


@pytest.mark.usefixtures("worker")
async def test_report_cli_queued_twice_runs_once_and_status_shows_the_file(
    client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    await seed_leads(pool, leads=500, agents=1)
    report_id = f"cli-{uuid.uuid4().hex[:8]}"
    args = ["report", "--report-id", report_id, "--user-id", "1"]
    args += ["--start", START.isoformat(), "--end", END.isoformat()]
    first, second = await asyncio.gather(
        asyncio.to_thread(run_offload, settings, *args, "--wait", "--json"),
        asyncio.to_thread(run_offload, settings, *args),
    )
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert f"queued report-{report_id}" in second.stdout
    result = json.loads(first.stdout[first.stdout.index("{") :])

    status = await asyncio.to_thread(run_offload, settings, "report", "status", report_id)
    assert status.returncode == 0, status.stderr
    assert result["file"] in status.stdout
    handle = client.get_workflow_handle(f"report-{report_id}")
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert len(smtp_sink.messages()) == 1
    unknown = await asyncio.to_thread(run_offload, settings, "report", "status", "nope-x")
    assert unknown.returncode == 2 and "no report 'nope-x'" in unknown.stderr


async def test_db_seed_loads_agents_with_addresses_and_leads(
    settings: Settings, pool: Pool
) -> None:
    args = ["db", "seed", "--leads", "1500", "--agents", "3", "--seed", "5", "--end", "2026-07-01"]
    done = await asyncio.to_thread(run_offload, settings, *args)
    assert done.returncode == 0, done.stderr
    assert "seeded 1500 leads for 3 agents" in done.stdout
    agents = await pool.fetch("SELECT id, email, digest_subscribed FROM agents ORDER BY id")
    assert [a["email"] for a in agents] == [f"agent{n}@example.com" for n in (1, 2, 3)]
    assert all(a["digest_subscribed"] for a in agents)
    per_agent = await pool.fetch("SELECT agent_id, count(*) FROM leads GROUP BY 1 ORDER BY 1")
    assert [r["count"] for r in per_agent] == [500, 500, 500]
    bad = await asyncio.to_thread(run_offload, settings, "db", "seed", "--end", "2026-02-30")
    assert bad.returncode == 2 and "--end" in bad.stderr


@pytest.mark.usefixtures("worker")
async def test_a_report_over_100_000_distinct_properties_finishes_and_equals_sql(
    client: Client, settings: Settings, pool: Pool
) -> None:
    # `property` is free text from POST /leads: every lead its own, all on one day, so one
    # chunk holds 101,000 cells (once about 5 MB of heartbeat, over the server's 2 MiB).
    await seed_leads(pool, leads=10, agents=1)
    day = date(2026, 5, 4)
    await pool.execute(
        "INSERT INTO leads (agent_id, name, email, property, source, score, created_at,"
        " updated_at) SELECT 1, 'Ada Lovelace', 'a@example.com', g || ' Harbour View, Flat '"
        " || (g % 7), (ARRAY['website', 'referral', 'portal'])[1 + g % 3], g % 101, t, t"
        " FROM generate_series(1, 101000) g,"
        " LATERAL (SELECT $1::timestamptz + g * interval '700 milliseconds' AS t) at",
        day_start(day),
    )
    await pool.execute("VACUUM ANALYZE leads")
    job = job_for(settings, start=day, end=day)
    handle = await enqueue_report(client, settings, pool, job)
    result = await handle.result()

    lines = read_csv(result.file)
    expected = await sql_report(pool, 1, day, day)
    assert len(expected) > 100_000
    assert lines[1:-1] == expected
    assert lines[-1] == await sql_totals(pool, 1, day, day)
    assert result.total_leads >= 101_000
