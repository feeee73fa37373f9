"""`offload demo`: start the embedded stack, walk through Offload's jobs, stop.

Each job kind adds a step to `STEPS`; a step gets the running system and prints what a
person would look at.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from offload import queues
from offload.db import Pool
from offload.devstack import DevStack
from offload.models import EmailJob
from offload.seed import seed
from offload.settings import Settings
from starters.dev import running_stack
from starters.email import enqueue_email
from starters.jobs import workflow_ui_url
from starters.report import enqueue_report, follow, print_result, report_job
from workers.main import build_workers, run_workers


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
    job = report_job(
        demo.settings,
        report_id=f"demo-{end.isoformat()}",
        user_id=1,
        start=(end - timedelta(days=179)).isoformat(),
        end=end.isoformat(),
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
STEPS: list[Step] = [lead_confirmation_step, report_step]


async def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    async with running_stack(settings) as (stack, client, pool):
        workers = build_workers(client, settings, pool, list(queues.BY_KIND))
        stop = asyncio.Event()
        running = asyncio.create_task(run_workers(workers, stop))
        try:
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
