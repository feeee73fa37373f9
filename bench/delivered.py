"""`POST /leads` to the message in the mail server, one lead at a time.

`offload api` alone in its own process, as it is deployed: no worker runs beside it, so the
lead's job is started eagerly on the API's own workflow worker (`OFFLOAD_API_WORKER`) and its
email sent by the local first attempt. Beside it, on queues of its own and alternating lead
by lead, the API as a client only (`OFFLOAD_API_WORKER=0`) with `offload worker` in another
process, whose job goes through matching once. Each latency runs from sending the request to
the message's file in the SMTP sink (its own process), which the sink writes before it
accepts the message; this process only posts and looks for the file, so neither its CPU nor
its polling lands on an API's event loop or on PostgreSQL. The in-memory dev server, like the
other rows; run it alone with `python -m bench.delivered`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.api import lead_body, start_process, wait_for_api
from bench.email import percentile
from bench.rows import Row, print_and_exit
from bench.stack import Stack, load_note, running_stack
from offload.dev.stack import stop_process
from offload.net import free_port
from offload.settings import Settings

SAMPLES = int(os.environ.get("BENCH_DELIVERED_SAMPLES", "60"))
WARMUP = 5
GOAL_MS = 40.0


@dataclass
class Shape:
    """One way to deploy the API, on its own task queues, and what its leads took."""

    name: str
    settings: Settings
    delivered: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)


async def post_until_delivered(
    http: httpx.AsyncClient, stack: Stack, shape: Shape, run: str, n: int
) -> None:
    """Post lead `n` to `shape`'s API and wait for its message in the sink."""
    before = stack.sink.count()
    began = time.perf_counter()
    response = await http.post(
        f"http://127.0.0.1:{shape.settings.api_port}/leads", json=lead_body(run, n)
    )
    response.raise_for_status()
    responded = time.perf_counter()
    while stack.sink.count() == before:
        assert time.perf_counter() - began < 60, "the email never came"
        await asyncio.sleep(0.0005)
    if n >= 2 * WARMUP:
        shape.delivered.append((time.perf_counter() - began) * 1000)
        shape.answered.append((responded - began) * 1000)


async def measure() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="offload-bench-delivered-") as tmp:
        root = Path(tmp)
        async with running_stack(root / "stack") as stack:
            run = uuid.uuid4().hex[:8]

            def settings(name: str, api_worker: bool) -> Settings:
                return stack.settings(
                    f"bench-{run}-{name}-",
                    OFFLOAD_API_PORT=free_port(),
                    OFFLOAD_API_WORKER=api_worker,
                    OFFLOAD_METRICS_ADDRESS=f"127.0.0.1:{free_port()}",
                    # One client posts every lead: measured is the path, not the abuse limit.
                    OFFLOAD_API_CLIENT_RATE_LIMIT=0,
                )

            # Each on its own queues; their leads alternate, so the machine's noise falls
            # on both alike.
            alone = Shape("offload api alone, its own worker", settings("alone", True))
            client = Shape(
                "offload api as a client only + offload worker", settings("client", False)
            )
            processes = [
                start_process(alone.settings, root, "api-alone", "api"),
                start_process(client.settings, root, "api-client", "api"),
                start_process(
                    client.settings, root, "worker", "worker", "--queues", "workflows,email"
                ),
            ]
            try:
                async with httpx.AsyncClient() as http:
                    for shape, api in ((alone, processes[0]), (client, processes[1])):
                        await wait_for_api(http, api, f"http://127.0.0.1:{shape.settings.api_port}")
                    for n in range(2 * (WARMUP + SAMPLES)):
                        shape = (alone, client)[n % 2]
                        await post_until_delivered(http, stack, shape, run, n)
            finally:
                for process in processes:
                    stop_process(process, timeout=20)
    p50 = statistics.median(alone.delivered)
    other = statistics.median(client.delivered)
    note = (
        f"{SAMPLES} leads one at a time to each shape, alternating, each until its message "
        f"is in the sink (the 201 after {statistics.median(alone.answered):.1f} and "
        f"{statistics.median(client.answered):.1f} ms, p50); the in-memory dev server; "
        f"{load_note()}"
    )
    return [
        Row.with_goal(
            "<=",
            1,
            name=f"POST /leads -> delivered p50 ({alone.name})",
            figure=f"{p50:.1f} ms (p99 {percentile(alone.delivered, 99):.0f})",
            baseline=f"{GOAL_MS:.0f} ms (the goal)",
            ratio=p50 / GOAL_MS,
            note=note,
        ),
        Row(
            name="  the API as a client only, a worker beside (OFFLOAD_API_WORKER=0)",
            figure=f"{other:.1f} ms (p99 {percentile(client.delivered, 99):.0f})",
            baseline=f"{p50:.1f} ms the API's own worker",
            ratio=other / p50,
            goal="(none)",
            met=True,
        ),
    ]


if __name__ == "__main__":
    print_and_exit(measure)
