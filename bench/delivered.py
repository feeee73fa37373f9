"""`POST /leads` to the message in the mail server, one lead at a time.

The API and the worker in one process on one Temporal client, as `offload dev` runs them,
so the lead's job is started eagerly and its email sent by the local first attempt. Each
latency runs from sending the request to its row in `email_log`, which `send_email` writes
just after the SMTP server took the message. The in-memory dev server, like the other
rows; run it alone with `python -m bench.delivered`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from api.app import create_app
from api.server import serve
from bench.api import lead_body
from bench.email import percentile
from bench.rows import Row, at_most, print_and_exit
from bench.stack import load_note, running_stack
from offload.db import QUERIES, create_pool
from offload.net import free_port
from offload.temporal import connect
from workers.main import build_workers, run_workers

SAMPLES = int(os.environ.get("BENCH_DELIVERED_SAMPLES", "60"))
WARMUP = 5
GOAL_MS = 40.0


async def measure() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="offload-bench-delivered-") as root:
        async with running_stack(Path(root)) as stack:
            run = uuid.uuid4().hex[:8]
            settings = stack.settings(
                f"bench-{run}-",
                OFFLOAD_API_PORT=free_port(),
                # One client posts every lead: measured here is the path, not the abuse limit.
                OFFLOAD_API_CLIENT_RATE_LIMIT=0,
            )
            client = await connect(settings)
            pool = await create_pool(settings, max_size=10)
            started = asyncio.Event()
            stop = asyncio.Event()
            workers = build_workers(client, settings, pool, ["workflows", "email"])
            app = create_app(settings, pool=pool, client=client)

            async def api(stop: asyncio.Event) -> None:
                await serve(app, settings, stop, started=started)

            running = asyncio.create_task(run_workers(workers, stop, [api]))
            found: list[float] = []
            try:
                await asyncio.wait_for(started.wait(), 60)
                base_url = f"http://127.0.0.1:{settings.api_port}"
                async with httpx.AsyncClient(base_url=base_url) as http:
                    for n in range(WARMUP + SAMPLES):
                        began = time.perf_counter()
                        response = await http.post("/leads", json=lead_body(run, n))
                        response.raise_for_status()
                        key = (
                            f"{settings.task_queue_prefix}lead-{response.json()['id']}-confirmation"
                        )
                        while not await pool.fetchrow(QUERIES.find_email_log, key):
                            assert time.perf_counter() - began < 60, "the email never came"
                            await asyncio.sleep(0.001)
                        if n >= WARMUP:
                            found.append((time.perf_counter() - began) * 1000)
            finally:
                stop.set()
                await running
                await pool.close()
    p50 = statistics.median(found)
    goal, met = at_most(p50 / GOAL_MS, 1)
    return [
        Row(
            name="POST /leads -> delivered p50 (API + worker in one process)",
            figure=f"{p50:.1f} ms (p99 {percentile(found, 99):.0f})",
            baseline=f"{GOAL_MS:.0f} ms (the goal)",
            ratio=p50 / GOAL_MS,
            goal=goal,
            met=met,
            note=f"{SAMPLES} leads one at a time, each until its email_log row; the in-memory "
            f"dev server; {load_note()}",
        )
    ]


if __name__ == "__main__":
    print_and_exit(measure)
