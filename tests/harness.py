"""Test harness: run Offload's workers and commands the way a user would, from tests."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from offload import queues
from offload.db import Pool
from offload.dev.stack import EmbeddedPostgres, find_binary
from offload.settings import Settings
from workers.main import build_services, build_workers, run_workers


async def create_database(postgres: EmbeddedPostgres, name: str, template: str = "") -> str:
    """A new database on the embedded server (a copy of `template`, if named); its DSN."""
    conn = await asyncpg.connect(postgres.dsn())
    try:
        await conn.execute(
            f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
        )
    finally:
        await conn.close()
    return postgres.dsn(name)


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, pool: Pool, kinds: list[str] | None = None
) -> AsyncIterator[None]:
    """Offload's workers for `settings`, in this process, for the duration of the block."""
    workers = build_workers(client, settings, pool, kinds or list(queues.BY_KIND))
    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(workers, stop, build_services(client, settings, pool)))
    try:
        yield
    finally:
        stop.set()
        await task


def offload_parser() -> argparse.ArgumentParser:
    """The argument parser of the installed `offload` script, found through its entry point."""
    [script] = entry_points(group="console_scripts", name="offload")
    cli = sys.modules[script.load().__module__]
    parser: argparse.ArgumentParser = cli.build_parser()
    return parser


def offload_process(settings: Settings, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """`offload ARGS` as a child process with `settings` in its environment."""
    return child_process(settings, [find_binary("offload", "offload"), *args], **popen)


def child_process(settings: Settings, command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """`command` as a child process with `settings` in its environment."""
    env = {**os.environ, **settings.to_env()}
    return subprocess.Popen(command, env=env, **popen)


def run_offload(
    settings: Settings, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `offload ARGS` to completion; its output is captured as text."""
    env = {**os.environ, **settings.to_env()}
    return subprocess.run(
        [find_binary("offload", "offload"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@asynccontextmanager
async def running_dev(
    settings: Settings, log: Path, seconds: float = 60, *, ctrl_c: bool = False
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`offload dev` as a child process, its output in `log`, stopped by SIGTERM after the block.

    With `ctrl_c` it is stopped as a terminal's Ctrl-C stops it: SIGINT to its process
    group, which it leads, as a shell's job does. It yields once the API answers (`offload
    dev` prints "ready" a moment before its API binds); the process has exited, and its
    `returncode` is set, when the block is left.
    """
    with log.open("wb") as out:
        dev = offload_process(settings, "dev", stdout=out, stderr=out, start_new_session=ctrl_c)
    try:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
            while True:
                if dev.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(await asyncio.to_thread(log.read_text))
                try:
                    await http.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield dev
    finally:
        if ctrl_c:
            os.killpg(dev.pid, signal.SIGINT)
        else:
            dev.send_signal(signal.SIGTERM)
        await asyncio.to_thread(dev.wait, 30)


def on_the_email_queue(settings: Settings) -> Settings:
    """`settings` whose workflow worker makes no local first attempt: with an SMTP rate limit
    (which only the email queue holds across workers) every send goes through the queue."""
    return settings.model_copy(update={"email_rate_limit_per_second": 1000.0})
