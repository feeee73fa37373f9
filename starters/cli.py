"""The `offload` command line: one subcommand per task, each an async function of its args."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from offload import tracing
from offload.db import DatabaseUnavailableError
from offload.jobs.errors import JobInputError
from offload.logs import configure_logging
from offload.net import PortInUseError
from offload.settings import Settings
from offload.temporal import TemporalUnavailableError
from starters import api, codec, db, demo, dev, dlq, email, report, schedules, stats, worker
from starters.console import CommandError, fail

COMMAND_MODULES = [dev, demo, worker, api, db, email, dlq, report, schedules, stats, codec]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload",
        description="Durable background jobs on Temporal. Settings come from environment "
        "variables (see README).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser


async def run(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run its command; return the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        tracing.configure()
        settings = Settings()
        code: int = await args.handler(args, settings)
        return code
    except CommandError as err:
        fail(str(err))
        return 2
    except JobInputError as err:
        # The client layer names the input at fault as the API does; here it is the flag.
        fail(f"--{err.field.replace('_', '-')}: {err}" if err.field else str(err))
        return 2
    except ValidationError as err:
        fail(f"invalid settings or input:\n{err}")
        return 2
    except tracing.TracingConfigError as err:
        fail(str(err))
        return 2
    except (PortInUseError, TemporalUnavailableError, DatabaseUnavailableError) as err:
        fail(str(err))
        return 1


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `offload` script.

    It leaves with `os._exit`: a process that used a Temporal client can crash in the
    interpreter's finalisation (sdk-python issue 300) and turn success into exit 134.
    """
    try:
        code = asyncio.run(run(argv))
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except Exception:
        # Through logging, so its PersonalDataFilter keeps the error's message out.
        logging.getLogger("offload").critical(
            "offload stopped on an unexpected error", exc_info=True
        )
        code = 1
    tracing.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
