"""The job side's load beside the bare endpoint: `python -m bench.shadow`, for `bench.api`.

Every `POST /leads` queues a confirmation email, which the job side (a worker, the Temporal
server, the sink, and the job's statements on PostgreSQL) runs while the lead blocks go on.
The bare endpoint queues none, so without this its blocks would run beside an idle job side.
This process gives them the same load: for each line `RATE SECONDS` on its standard input it
queues `RATE * SECONDS` confirmation emails at their due times, open loop, the way the
worker's relay starts the leads' jobs (an eager start in a process that hosts the workflow
worker, which then sends the email), and runs them to the end. When its input closes it
waits for its jobs' results and prints `sent N`.

Its settings (a task-queue prefix of its own, the same PostgreSQL, Temporal and sink) come
from the environment, as every Offload process's do.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from temporalio.client import Client, WorkflowHandle

from bench.email import email_job
from offload.db import create_pool
from offload.jobs.email import enqueue_email
from offload.models import EmailResult
from offload.settings import Settings
from offload.temporal import connect
from workers.main import build_workers, run_workers
from workflows.email import SendEmailWorkflow


async def queue_block(
    settings: Settings,
    client: Client,
    rate: float,
    seconds: float,
    first: int,
    handles: list[WorkflowHandle[SendEmailWorkflow, EmailResult]],
) -> None:
    """`rate * seconds` email jobs, each queued at its due time."""
    count = round(rate * seconds)
    start = time.perf_counter()
    for k in range(count):
        wait = start + k / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        job = email_job(settings, f"{settings.task_queue_prefix}shadow-{first + k}")
        handles.append(await enqueue_email(client, settings, job))


async def main() -> int:
    settings = Settings()
    client = await connect(settings)
    pool = await create_pool(settings)
    workers = build_workers(client, settings, pool, ["workflows", "email"])
    stop = asyncio.Event()
    running = asyncio.create_task(run_workers(workers, stop))
    handles: list[WorkflowHandle[SendEmailWorkflow, EmailResult]] = []
    blocks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    queued = 0
    while line := await reader.readline():
        rate, seconds = (float(part) for part in line.split())
        blocks.append(
            asyncio.create_task(queue_block(settings, client, rate, seconds, queued, handles))
        )
        queued += round(rate * seconds)
    await asyncio.gather(*blocks)
    results = await asyncio.gather(*(handle.result() for handle in handles))
    sent = sum(result.status == "sent" for result in results)
    stop.set()
    await running
    await pool.close()
    print(f"sent {sent}", flush=True)
    return 0 if sent == len(results) else 1


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    # A process that used a Temporal client may crash at exit (sdk-python issue 300).
    os._exit(code)
