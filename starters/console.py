"""How commands talk to the console: the error type for bad input, and output formats."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from offload.db import Pool, create_pool
from offload.settings import Settings

# What `add_commands` of each command module adds its commands to.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
# A command: its parsed arguments and the settings in, the exit code out.
Handler = Callable[[argparse.Namespace, Settings], Awaitable[int]]


class CommandError(Exception):
    """Bad input to a command: the message says what is wrong; the command exits 2."""


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def fail(message: str) -> None:
    print(f"offload: error: {message}", file=sys.stderr)


@asynccontextmanager
async def database(settings: Settings, *, max_size: int) -> AsyncIterator[Pool]:
    """A pool to the app database for one command, closed when the block ends."""
    pool = await create_pool(settings, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


def add_command(
    commands: Commands,
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str | None = None,
    with_json: bool = False,
) -> argparse.ArgumentParser:
    """Add the command `name`, run by `handler`; with `with_json`, a `--json` flag."""
    parser = commands.add_parser(name, help=help, description=description)
    if with_json:
        parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handler)
    return parser


def add_command_group(commands: Commands, name: str, *, help: str, description: str) -> Commands:
    """Add `offload <name> COMMAND ...`; its commands are added to what this returns."""
    group = commands.add_parser(name, help=help, description=description)
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
