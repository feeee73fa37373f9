"""`offload db ...`: database migrations."""

from __future__ import annotations

import argparse

from offload.db import create_pool, migrate
from offload.settings import Settings


async def migrate_command(args: argparse.Namespace, settings: Settings) -> int:
    pool = await create_pool(settings, max_size=2)
    try:
        applied = await migrate(pool)
    finally:
        await pool.close()
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="database tasks", description="Database tasks.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    parser = db_commands.add_parser(
        "migrate",
        help="apply pending migrations",
        description="Apply pending migrations, once each.",
    )
    parser.set_defaults(handler=migrate_command)
