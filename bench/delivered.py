"""`POST /leads` to the message in the mail server, one lead at a time.

`offload api` alone in its own process, as it is deployed: no worker runs beside it, so the
lead's job is started eagerly on the API's own workflow worker (`OFFLOAD_API_WORKER`) and its
email sent by the local first attempt. Each latency runs from sending the request to the
message's file in the SMTP sink (its own process), which the sink writes before it accepts
the message; this process only posts and looks for the file, so neither its CPU nor its
polling lands on the API's event loop or on PostgreSQL. The in-memory dev server, like the
other rows; run it alone with `python -m bench.delivered`.
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

from bench.api import lead_body, start_process, wait_for_api
from bench.email import percentile
from bench.rows import Row, at_most, print_and_exit
from bench.stack import load_note, running_stack
from offload.dev.stack import stop_process
from offload.net import free_port

SAMPLES = int(os.environ.get("BENCH_DELIVERED_SAMPLES", "60"))
WARMUP = 5
GOAL_MS = 40.0


async def measure() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="offload-bench-delivered-") as tmp:
        root = Path(tmp)
        async with running_stack(root / "stack") as stack:
            run = uuid.uuid4().hex[:8]
            settings = stack.settings(
                f"bench-{run}-",
                OFFLOAD_API_PORT=free_port(),
                OFFLOAD_API_WORKER=True,
                OFFLOAD_METRICS_ADDRESS=f"127.0.0.1:{free_port()}",
                # One client posts every lead: measured here is the path, not the abuse limit.
                OFFLOAD_API_CLIENT_RATE_LIMIT=0,
            )
            api = start_process(settings, root, "api", "api")
            delivered: list[float] = []
            answered: list[float] = []
            try:
                base_url = f"http://127.0.0.1:{settings.api_port}"
                async with httpx.AsyncClient(base_url=base_url) as http:
                    await wait_for_api(http, api)
                    for n in range(WARMUP + SAMPLES):
                        before = stack.sink.count()
                        began = time.perf_counter()
                        response = await http.post("/leads", json=lead_body(run, n))
                        response.raise_for_status()
                        responded = time.perf_counter()
                        while stack.sink.count() == before:
                            assert time.perf_counter() - began < 60, "the email never came"
                            await asyncio.sleep(0.0005)
                        if n >= WARMUP:
                            delivered.append((time.perf_counter() - began) * 1000)
                            answered.append((responded - began) * 1000)
            finally:
                stop_process(api, timeout=20)
    p50 = statistics.median(delivered)
    goal, met = at_most(p50 / GOAL_MS, 1)
    return [
        Row(
            name="POST /leads -> delivered p50 (offload api alone, its own worker)",
            figure=f"{p50:.1f} ms (p99 {percentile(delivered, 99):.0f})",
            baseline=f"{GOAL_MS:.0f} ms (the goal)",
            ratio=p50 / GOAL_MS,
            goal=goal,
            met=met,
            note=f"{SAMPLES} leads one at a time, each until its message is in the sink; "
            f"the 201 came after {statistics.median(answered):.1f} ms (p50); the in-memory "
            f"dev server; {load_note()}",
        )
    ]


if __name__ == "__main__":
    print_and_exit(measure)
