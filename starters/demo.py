"""`offload demo`: start the embedded stack, walk through Offload's jobs, stop.

Each job kind adds a step to `STEPS`; a step gets the running system and prints what a
person would look at.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from offload import queues
from offload.db import Pool
from offload.devstack import DevStack
from offload.models import EmailJob, RedriveRequest, RetryConfig
from offload.settings import Settings
from starters.dev import running_stack
from starters.dlq import dead_letter_handle, list_dead_letters, redrive
from starters.email import enqueue_email
from starters.jobs import workflow_ui_url
from workers.main import build_workers, run_workers
from workflows.dead_letters import DeadLetterWorkflow
from workflows.email import SendEmailWorkflow


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
    deadline = time.monotonic() + 30
    while True:
        rows = [r for r in await list_dead_letters(demo.pool) if r["workflow_id"] in wanted]
        if len(rows) == len(wanted) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
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
        outcome = await demo.client.get_workflow_handle_for(
            SendEmailWorkflow.run, job.workflow_id
        ).result()
        print(f"  {job.entry_id} -> {job.workflow_id}: {outcome.status}")
    landed = [p for p in demo.mail_files() if p not in before]
    print(f"landed    {len(landed)} message(s), one per redriven job")


Step = Callable[[Demo], Awaitable[None]]
STEPS: list[Step] = [lead_confirmation_step, dead_letters_step]


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
