"""Offload's email job beside its peers doing the same work on the same machine.

The same confirmation email (`EmailActivities.deliver`: look up `email_log`, render,
send over a kept SMTP connection, log it) through the same SMTP sink and the same
embedded PostgreSQL, as:

- **Offload**: `SendEmailWorkflow` by `enqueue_email`, worker in this process, the
  in-memory Temporal dev server;
- **DBOS**: a durable workflow of one step, its system database on the same PostgreSQL,
  started and run in this process (DBOS runs workflows where they start);
- **procrastinate**: a task deferred to a queue in the same PostgreSQL, its worker in this
  process (LISTEN/NOTIFY wakes it);
- **Celery** with Redis (`redis-server` on the PATH, else the row says it was skipped):
  `bench.celery_peer`'s task, its worker a `celery worker` process (prefork, 2 children).

Each row: p50 and p99 one job at a time (enqueue to delivered), and jobs/s with a batch in
flight. Run it with `python -m bench.peers`; it needs the `bench` extra (`make bench`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from activities.email import EmailActivities
from bench.email import email_job, latencies, percentile
from bench.rows import Row, print_and_exit
from bench.stack import Stack, load_note, running_stack
from offload.db import Pool, create_pool
from offload.dev.stack import stop_process
from offload.jobs.email import enqueue_email
from offload.models import EmailJob
from offload.net import free_port
from offload.polling import wait_until
from offload.settings import Settings
from offload.temporal import connect
from workers.main import build_workers, run_workers

SAMPLES = int(os.environ.get("BENCH_PEERS_SAMPLES", "60"))
BATCH = int(os.environ.get("BENCH_PEERS_BATCH", "100"))
# Jobs each side runs before it is measured. Offload goes first, on a dev server seconds
# old: with 5, its first latencies still paid the server's and the sandbox's warm-up.
WARMUP = int(os.environ.get("BENCH_PEERS_WARMUP", "20"))
# How long a sender waits for one job: past it the worker is stuck, and the run says so.
TASK_SECONDS = 60

# One job of a side: deliver the email with this idempotency key, return once delivered.
Send = Callable[[str], Awaitable[None]]


async def figures(send: Send, prefix: str) -> tuple[list[float], float]:
    """Latencies in ms, one at a time, then jobs/s of one batch of `BATCH` at once."""
    [found] = await paired_figures([send], [prefix])
    return found


async def paired_figures(
    sends: Sequence[Send], prefixes: Sequence[str]
) -> list[tuple[list[float], float]]:
    """`figures` of several sides, their latencies taking turns (A B B A ...), so that the
    machine's noise falls on each alike; then each side's batch, one after another."""
    for send, prefix in zip(sends, prefixes, strict=True):
        print(f"  {prefix} ...", file=sys.stderr, flush=True)
        for n in range(WARMUP):
            await send(f"{prefix}-warmup-{n}")

    def numbered(send: Send, prefix: str) -> Callable[[int], Awaitable[None]]:
        return lambda n: send(f"{prefix}-latency-{n}")

    found = await latencies(
        [numbered(send, prefix) for send, prefix in zip(sends, prefixes, strict=True)], SAMPLES
    )
    rates = []
    for send, prefix in zip(sends, prefixes, strict=True):
        started = time.perf_counter()
        await asyncio.gather(*(send(f"{prefix}-batch-{n}") for n in range(BATCH)))
        rates.append(BATCH / (time.perf_counter() - started))
    return list(zip(found, rates, strict=True))


@contextlib.asynccontextmanager
async def offload_side(stack: Stack, settings: Settings) -> AsyncIterator[Send]:
    client = await connect(settings)
    pool = await create_pool(settings, max_size=10)
    stop = asyncio.Event()
    running = asyncio.create_task(
        run_workers(build_workers(client, settings, pool, ["workflows", "email"]), stop)
    )

    async def send(key: str) -> None:
        result = await (await enqueue_email(client, settings, email_job(settings, key))).result()
        assert result.status == "sent", result

    try:
        yield send
    finally:
        stop.set()
        await running
        await pool.close()


async def create_database(stack: Stack, name: str) -> str:
    await stack.sql(f"CREATE DATABASE {name}")
    return stack.postgres.dsn(name)


@contextlib.asynccontextmanager
async def dbos_side(stack: Stack, settings: Settings, pool: Pool) -> AsyncIterator[Send]:
    from dbos import DBOS, SetWorkflowID

    dsn = await create_database(stack, "dbos_system")
    emails = EmailActivities(settings, pool, keep_connections=settings.smtp_max_connections)
    DBOS(config={"name": "offload-bench", "system_database_url": dsn, "log_level": "WARNING"})

    @DBOS.step()
    async def deliver(job: dict[str, Any]) -> str:
        email = EmailJob.model_validate(job)
        sent = await emails.deliver(email, workflow_id=f"dbos-{email.idempotency_key}")
        return sent.message_id

    @DBOS.workflow()
    async def send_email_workflow(job: dict[str, Any]) -> str:
        return await deliver(job)

    DBOS.launch()

    async def send(key: str) -> None:
        job = email_job(settings, key)
        with SetWorkflowID(f"dbos-email-{key}"):
            handle = await DBOS.start_workflow_async(send_email_workflow, job.model_dump())
        await handle.get_result()

    try:
        yield send
    finally:
        await emails.close()
        DBOS.destroy()
        # DBOS made its executor the loop's default, and has shut it down.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


@contextlib.asynccontextmanager
async def procrastinate_side(stack: Stack, settings: Settings, pool: Pool) -> AsyncIterator[Send]:
    import procrastinate

    dsn = await create_database(stack, "procrastinate")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    emails = EmailActivities(settings, pool, keep_connections=settings.smtp_max_connections)
    # The task runs in this process's worker: it tells the waiting sender its email is out.
    delivered: dict[str, asyncio.Future[None]] = {}

    @app.task(name="send_email", queue="emails")
    async def send_email_task(job: dict[str, Any]) -> None:
        email = EmailJob.model_validate(job)
        waiting = delivered[email.idempotency_key]
        try:
            await emails.deliver(email, workflow_id=f"procrastinate-{email.idempotency_key}")
        except Exception as err:
            waiting.set_exception(err)
            raise
        waiting.set_result(None)

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = asyncio.create_task(
            app.run_worker_async(queues=["emails"], concurrency=10, install_signal_handlers=False)
        )

        async def send(key: str) -> None:
            job = email_job(settings, key)
            delivered[key] = asyncio.get_running_loop().create_future()
            await send_email_task.defer_async(job=job.model_dump(mode="json"))
            try:
                await asyncio.wait_for(delivered[key], 60)
            finally:
                del delivered[key]

        try:
            yield send
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await emails.close()


def redis_server() -> str | None:
    """`redis-server` on the PATH, or None: the Celery row is then skipped, not failed."""
    return shutil.which("redis-server")


def launch(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A peer's server or worker process, its output in `log`, in a process group of its own.

    The group lets `stop_group` reach what the process forked (a Celery worker's children),
    and keeps a Ctrl-C in the terminal for this process, whose cleanup stops the peer.
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop `process` as `stop_process` does, then kill whatever is left of its group."""
    stop_process(process, timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def log_tail(log: Path, lines: int = 20) -> str:
    """The end of a peer's log, for an error that says why the peer failed."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


@contextlib.asynccontextmanager
async def celery_results(app: Any, url: str) -> AsyncIterator[dict[str, asyncio.Future[Any]]]:
    """Futures by task id, each set to the task's result meta once the worker has stored it.

    The Redis backend publishes every result on a channel named after its key. One pattern
    subscription, confirmed before any task is sent, sees them all, with neither a poll nor
    a thread per waiting task (what `AsyncResult.get` would need with 100 in flight).
    """
    from celery.states import READY_STATES
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    pubsub = client.pubsub()
    waiting: dict[str, asyncio.Future[Any]] = {}

    async def read() -> None:
        async for message in pubsub.listen():
            if message["type"] != "pmessage":
                continue
            meta = app.backend.decode_result(message["data"])
            future = waiting.get(meta["task_id"])
            if meta["status"] in READY_STATES and future is not None and not future.done():
                future.set_result(meta)

    try:
        await pubsub.psubscribe(app.backend.get_key_for_task("*"))
        confirmed = await pubsub.get_message(timeout=10)
        assert confirmed is not None and confirmed["type"] == "psubscribe", confirmed
        reader = asyncio.create_task(read())
        try:
            yield waiting
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    finally:
        await pubsub.aclose()
        await client.aclose()


@contextlib.asynccontextmanager
async def celery_side(stack: Stack, settings: Settings, redis: str) -> AsyncIterator[Send]:
    """`redis-server` and a `celery worker` process, as a user runs them; both stopped on exit."""
    from bench import celery_peer

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server_log, log = stack.root / "redis-server.log", stack.root / "celery-worker.log"
    env = {**os.environ, **settings.to_env(), "BENCH_REDIS_URL": url}
    worker_command = [sys.executable, "-m", "celery", "-A", "bench.celery_peer", "worker"]
    worker_command += ["--pool=prefork", "--concurrency=2", "--loglevel=WARNING"]
    worker_command += ["--without-gossip", "--without-mingle"]
    async with contextlib.AsyncExitStack() as cleanup:
        server = launch(
            [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            server_log,
        )
        cleanup.callback(stop_group, server, 10)

        async def redis_listening() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{log_tail(server_log)}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await wait_until(redis_listening, within=20, what="redis-server")
        worker = launch(worker_command, log, env)
        cleanup.callback(stop_group, worker, 30)
        app = celery_peer.make_app(url)
        cleanup.callback(app.close)
        waiting = await cleanup.enter_async_context(celery_results(app, url))
        task = app.signature("bench.send_email")

        async def worker_up() -> bool:
            if worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{log_tail(log)}")
            return bool(await asyncio.to_thread(app.control.ping, timeout=0.5))

        await wait_until(worker_up, within=60, what="the Celery worker")

        async def send(key: str) -> None:
            job = email_job(settings, key)
            task_id = str(uuid.uuid4())
            done = waiting[task_id] = asyncio.get_running_loop().create_future()
            try:
                await asyncio.to_thread(
                    task.apply_async, (job.model_dump(mode="json"),), task_id=task_id
                )
                meta = await asyncio.wait_for(done, TASK_SECONDS)
            except TimeoutError:
                alive = "running" if worker.poll() is None else "exited"
                raise RuntimeError(
                    f"no result for {key} in {TASK_SECONDS} s (worker {alive}):\n{log_tail(log)}"
                ) from None
            finally:
                del waiting[task_id]
            # The type only: an SMTP error's text can hold the recipient's address.
            if meta["status"] != "SUCCESS":
                error = type(meta["result"]).__name__
                raise RuntimeError(f"the Celery task of {key} ended {meta['status']}: {error}")

        yield send


def celery_row(found: tuple[list[float], float] | None, offload: tuple[list[float], float]) -> Row:
    """The Celery peer's row, or a row that says it was skipped and why (`found` None)."""
    if found is not None:
        return peer_row("Celery task, Redis broker (2 prefork children)", found, offload)
    return Row(
        name="  peer: Celery task, Redis broker",
        figure="skipped",
        baseline="-",
        ratio=float("nan"),
        goal="(none)",
        met=True,
        note="no redis-server on the PATH",
    )


def peer_row(
    name: str, found: tuple[list[float], float], offload: tuple[list[float], float]
) -> Row:
    ms, rate = found
    own_ms, own_rate = offload
    return Row(
        name=f"  peer: {name}",
        figure=f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 99):.0f}, {rate:.0f}/s",
        baseline=f"Offload p50 {statistics.median(own_ms):.1f} ms, {own_rate:.0f}/s",
        ratio=statistics.median(own_ms) / statistics.median(ms),
        goal="(none)",
        met=True,
    )


async def measure() -> list[Row]:
    """Every side on one stack: Offload and DBOS together, taking turns, then the others."""
    with tempfile.TemporaryDirectory(prefix="offload-bench-peers-") as root:
        async with running_stack(Path(root)) as stack:
            run = uuid.uuid4().hex[:8]
            settings = stack.settings(f"bench-{run}-")
            pool = await create_pool(settings, max_size=10)
            try:
                # Offload and DBOS, whose ratio is the goal, take turns: both run at once.
                async with (
                    offload_side(stack, settings) as offload_send,
                    dbos_side(stack, settings, pool) as dbos_send,
                ):
                    offload, dbos = await paired_figures(
                        [offload_send, dbos_send], [f"{run}-offload", f"{run}-dbos"]
                    )
                async with procrastinate_side(stack, settings, pool) as send:
                    procrastinate = await figures(send, f"{run}-procrastinate")
                celery = None
                if redis := redis_server():
                    async with celery_side(stack, settings, redis) as send:
                        celery = await figures(send, f"{run}-celery")
                delivered = stack.sink.count()
            finally:
                await pool.close()
    load = load_note()
    own_p50, dbos_p50 = statistics.median(offload[0]), statistics.median(dbos[0])
    sides = 3 + (celery is not None)
    rows = [
        Row.with_goal(
            "<=",
            2,
            name="email p50 vs DBOS (same emails, sink, PostgreSQL)",
            figure=f"{own_p50:.1f} ms (p99 {percentile(offload[0], 99):.0f}), {offload[1]:.0f}/s",
            baseline=f"{dbos_p50:.1f} ms (p99 {percentile(dbos[0], 99):.0f}), "
            f"{dbos[1]:.0f}/s DBOS 1-step workflow",
            ratio=own_p50 / dbos_p50,
            note=f"{SAMPLES} one at a time per side, Offload and DBOS taking turns, then a "
            f"batch of {BATCH} per side, one after another; "
            f"{delivered}/{sides * (WARMUP + SAMPLES + BATCH)} messages reached the sink; "
            f"ratio = Offload / peer; {load}",
        ),
        peer_row("procrastinate task (own worker, same PostgreSQL)", procrastinate, offload),
        celery_row(celery, offload),
    ]
    return rows


if __name__ == "__main__":
    print_and_exit(measure)
