"""`offload demo`: start the embedded stack, walk through Offload's jobs, stop.

Each job kind adds a step to `STEPS`; a step gets the running system and prints what a
person would look at.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.service import RPCError, RPCStatusCode

from api.leads import LeadIn, confirmation_email
from offload import queues
from offload.db import Pool
from offload.jobs.dead_letters import dead_letter_handle, list_dead_letters, redrive
from offload.jobs.email import enqueue_email
from offload.jobs.reports import enqueue_report, new_report_job
from offload.jobs.schedules import apply_schedules
from offload.jobs.schedules import schedule_id as schedule_id_of
from offload.jobs.start import workflow_ui_url
from offload.jobs.stats import collect_stats, render_table
from offload.models import EmailJob, EmailResult, MarketRefreshResult, RedriveRequest, RetryConfig
from offload.net import free_port, port_is_free
from offload.polling import wait_until
from offload.seed import seed
from offload.settings import Settings
from starters.api import api_service, api_url
from starters.dev import running_stack
from starters.report import follow, print_result
from workers.main import build_services, build_workers, run_workers
from workflows.dead_letters import DeadLetterWorkflow

if TYPE_CHECKING:
    from offload.dev.stack import DevStack


@dataclass
class Demo:
    """What each step of the walk-through can use."""

    settings: Settings
    stack: DevStack
    client: Client
    pool: Pool

    def heading(self, text: str) -> None:
        print(f"\n== {text}")

    def mail_files(self) -> list[Path]:
        if self.stack.smtp is None:
            return []
        return sorted(self.stack.smtp.maildir.glob("*.eml"))


async def show_workflow(demo: Demo, workflow_id: str) -> None:
    description = await demo.client.get_workflow_handle(workflow_id).describe()
    status = description.status.name if description.status else "UNKNOWN"
    print(f"workflow  {workflow_id}: {status}")
    print(f"web ui    {workflow_ui_url(demo.settings, workflow_id, description.run_id)}")


async def lead_confirmation_step(demo: Demo) -> None:
    demo.heading("1. A lead-confirmation email, queued and delivered")
    before = set(demo.mail_files())
    job = EmailJob(
        to="ada.lovelace@example.com",
        template="lead-confirmation",
        data={"name": "Ada Lovelace", "property": "12 Harbour View, Flat 3"},
        retry=demo.settings.retry,
    )
    handle = await enqueue_email(demo.client, demo.settings, job)
    print(f"queued    {handle.id}")
    result = await handle.result()
    print(f"result    {result.status}, Message-ID {result.message_id}")
    landed = [p for p in demo.mail_files() if p not in before]
    for path in landed:
        print(f"landed    {path}")
    if result.status == "already_sent":
        print("          (sent by an earlier demo run: the idempotency key holds across runs)")
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    await show_workflow(demo, handle.id)


async def schedules_step(demo: Demo) -> None:
    demo.heading("4. The hourly and daily jobs as Temporal Schedules, one triggered")
    for schedule_id, outcome in await apply_schedules(demo.client, demo.settings):
        print(f"{outcome:<9} {schedule_id}")
    handle = demo.client.get_schedule_handle(schedule_id_of(demo.settings, "refresh-market-data"))
    before = (await handle.describe()).info.num_actions
    await handle.trigger()
    description = await handle.describe()
    while description.info.num_actions == before:
        await asyncio.sleep(0.1)
        description = await handle.describe()
    started = description.info.recent_actions[-1].action
    assert isinstance(started, ScheduleActionExecutionStartWorkflow)
    run = demo.client.get_workflow_handle(
        started.workflow_id, run_id=started.first_execution_run_id, result_type=MarketRefreshResult
    )
    result = await run.result()
    print(f"triggered {handle.id}: {result.areas} areas stored for {result.day}")
    rows = await demo.pool.fetch(
        "SELECT area, median_price FROM market_data WHERE day = $1 ORDER BY area", result.day
    )
    for row in rows:
        print(f"          {row['area']:<14} median {row['median_price']:>12,.2f}")
    await show_workflow(demo, started.workflow_id)
    print("then      `offload schedules list`, `temporal schedule list` (see README: Schedules)")


async def http_lead_step(demo: Demo) -> None:
    demo.heading("5. A lead posted over HTTP: saved, answered at once, confirmed by email")
    before = set(demo.mail_files())
    lead = {
        "name": "Grace Hopper",
        "email": "grace.hopper@example.com",
        "phone": "+1 555 0100",
        "property": "7 Arsenal Yard",
        "source": "demo",
    }
    url = api_url(demo.settings)
    async with httpx.AsyncClient(base_url=url) as http:
        await http.get("/healthz")  # the first request pays for the connection
        started = time.perf_counter()
        response = await http.post("/leads", json=lead)
        elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"POST      {url}/leads -> {response.status_code} {response.text} in {elapsed_ms:.1f} ms")
    response.raise_for_status()
    lead_id = response.json()["id"]
    workflow_id = confirmation_email(demo.settings, lead_id, LeadIn(**lead)).workflow_id
    # The API starts the job right after its response (the relay would, within seconds).
    handle = demo.client.get_workflow_handle(workflow_id, result_type=EmailResult)

    async def job_exists() -> bool:
        try:
            await handle.describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        return True

    await wait_until(job_exists, within=15, what=f"the job {workflow_id}", interval=0.05)
    result = await handle.result()
    print(f"result    {result.status}, Message-ID {result.message_id}")
    for path in (p for p in demo.mail_files() if p not in before):
        print(f"landed    {path}")
    await show_workflow(demo, workflow_id)
    print(f"then      {url}/docs (the OpenAPI document), {url}/healthz, {url}/metrics")


async def dead_letters_step(demo: Demo) -> None:
    demo.heading("2. Dead letters: refused and deferred emails, listed, redriven, delivered")
    sink = demo.stack.smtp
    if sink is None:
        print("skipped   (SMTP_HOST is set: the demo cannot make a real server refuse mail)")
        return
    refused, deferred = "nobody@example.com", "busy@example.com"
    sink.rules.set(refused, "550 5.1.1 No such user")
    sink.rules.set(deferred, "451 4.3.0 Try later")
    # A different key per run, so each demo run dead-letters afresh.
    run = uuid.uuid4().hex[:8]
    # Few, short retries for the deferred one, so the demo does not wait minutes.
    quick = RetryConfig(
        initial_interval_seconds=0.5, maximum_interval_seconds=1, maximum_attempts=3
    )
    jobs = [
        EmailJob(
            to=to,
            template="lead-confirmation",
            data={"name": "Ada Lovelace", "property": "12 Harbour View, Flat 3"},
            idempotency_key=f"demo-dlq-{name}-{run}",
            retry=quick,
        )
        for name, to in (("refused", refused), ("deferred", deferred))
    ]
    handles = [await enqueue_email(demo.client, demo.settings, job) for job in jobs]
    for handle in handles:
        print(f"queued    {handle.id}")
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        await show_workflow(demo, handle.id)

    wanted = {job.workflow_id for job in jobs}

    async def listed() -> list[dict[str, Any]] | None:
        rows = [r for r in await list_dead_letters(demo.pool) if r["workflow_id"] in wanted]
        return rows if len(rows) == len(wanted) else None

    rows = await wait_until(listed, within=30, what="the dead-letter entries", interval=0.05)
    print("offload dlq list:")
    for row in sorted(rows, key=lambda r: r["workflow_id"]):
        print(
            f"  {row['id']}  {row['status']}  attempts {row['attempts']}  "
            f"{row['error_type']}: {row['error_message']}"
        )
    summary = await dead_letter_handle(demo.client, demo.settings).query(DeadLetterWorkflow.summary)
    print(f"summary   {summary.counts}")

    sink.rules.set(refused, None)
    sink.rules.set(deferred, None)
    print("the sink accepts both addresses again; offload dlq redrive:")
    before = set(demo.mail_files())
    result = await redrive(demo.client, demo.settings, RedriveRequest(ids=[r["id"] for r in rows]))
    for job in result.redriven:
        outcome = await demo.client.get_workflow_handle(
            job.workflow_id, result_type=EmailResult
        ).result()
        print(f"  {job.entry_id} -> {job.workflow_id}: {outcome.status}")
    landed = [p for p in demo.mail_files() if p not in before]
    print(f"landed    {len(landed)} message(s), one per redriven job")


async def stats_step(demo: Demo) -> None:
    demo.heading("6. Queue depth, jobs, dead letters and latency: `offload stats`")
    address = demo.settings.metrics_address
    stats = await collect_stats(
        demo.client, demo.settings, f"http://{address}/metrics" if address else ""
    )
    print(render_table(stats))
    print("\n`offload stats --watch` refreshes this; `--json` is for scripts.")


DEMO_LEADS, DEMO_AGENTS = 20_000, 5


async def report_step(demo: Demo) -> None:
    demo.heading("3. A leads report in chunks: progress, CSV file, report-ready email")
    have = await demo.pool.fetchval("SELECT count(*) FROM leads")
    if have < DEMO_LEADS:
        done = await seed(
            demo.pool, leads=DEMO_LEADS - have, agents=DEMO_AGENTS, seed=1, end=date.today()
        )
        print(f"seeded    {done.leads} leads for {done.agents} agents ({done.first_day} to "
              f"{done.last_day})")  # fmt: skip
    else:
        print(f"seeded    already: {have} leads")
    end = date.today() - timedelta(days=1)
    job = new_report_job(
        demo.settings,
        report_id=f"demo-{end.isoformat()}",
        user_id=1,
        start=end - timedelta(days=179),
        end=end,
    ).model_copy(update={"chunk_rows": 300})
    before = set(demo.mail_files())
    handle = await enqueue_report(demo.client, demo.settings, demo.pool, job)
    print(f"queued    {handle.id} (agent 1, {job.start} to {job.end}, chunks of ~300 leads)")
    result = await follow(handle)
    print_result(result, as_json=False)
    for path in (p for p in demo.mail_files() if p not in before):
        print(f"landed    {path}")
    await show_workflow(demo, handle.id)


Step = Callable[[Demo], Awaitable[None]]
STEPS: list[Step] = [
    lead_confirmation_step,
    dead_letters_step,
    report_step,
    schedules_step,
    http_lead_step,
    stats_step,
]


class OneLineFailures(logging.Filter):
    """Logs a failed attempt without its traceback: the demo fails some on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


async def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    logging.getLogger("temporalio.activity").addFilter(OneLineFailures())
    async with running_stack(settings) as (stack, client, pool):
        settings = stack.settings  # with the URL of the sample market feed it serves
        if not port_is_free(settings.api_port, settings.api_host):
            settings = settings.model_copy(update={"api_port": free_port()})
        workers = build_workers(client, settings, pool, list(queues.BY_KIND))
        stop, api_started = asyncio.Event(), asyncio.Event()
        services = [
            *build_services(client, settings, pool),
            api_service(settings, pool, client, started=api_started),
        ]
        running = asyncio.create_task(run_workers(workers, stop, services))
        try:
            await asyncio.wait_for(api_started.wait(), 30)
            demo = Demo(settings, stack, client, pool)
            for step in STEPS:
                await step(demo)
        finally:
            stop.set()
            await running
    print("\nThe demo stopped its stack; `make dev` starts it again with the same data,")
    print("and `temporal workflow list` then shows the workflows above.")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="walk through the jobs on the embedded stack",
        description="Start the embedded stack, run each kind of job and show where it landed, "
        "then stop.",
    )
    parser.set_defaults(handler=demo_command)
