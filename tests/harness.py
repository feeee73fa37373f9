"""Test harness: run Offload's workers and commands the way a user would, from tests."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

from temporalio.client import Client

from offload import queues
from offload.db import Pool
from offload.dev.stack import find_binary
from offload.settings import Settings
from workers.main import build_services, build_workers, run_workers


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
