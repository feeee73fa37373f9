"""`offload demo`: start the embedded stack, walk through Offload's jobs, stop.

Each job kind adds a step to `STEPS`; a step gets the running system and prints what a
person would look at.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    WorkflowExecutionStatus,
)

from offload import queues
from offload.db import Pool
from offload.devstack import DevStack
from offload.models import EmailJob, MarketRefreshResult
from offload.settings import Settings
from starters.dev import running_stack
from starters.email import enqueue_email
from starters.jobs import workflow_ui_url
from starters.schedules import apply_schedules
from starters.schedules import schedule_id as schedule_id_of
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


Step = Callable[[Demo], Awaitable[None]]
STEPS: list[Step] = [lead_confirmation_step, schedules_step]


async def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    async with running_stack(settings) as (stack, client, pool):
        settings = stack.settings  # with the URL of the sample market feed it serves
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
