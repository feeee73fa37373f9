"""How commands talk to the console: the error type for bad input, and output formats."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta
from typing import Any


class CommandError(Exception):
    """Bad input to a command: the message says what is wrong; the command exits 2."""


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def fail(message: str) -> None:
    print(f"offload: error: {message}", file=sys.stderr)


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str, field: str) -> timedelta:
    """`90s`, `10m`, `2h`, `1d`, `1h30m`, or a CommandError naming `field`."""
    found = _DURATION.match(text.strip())
    if not text.strip() or found is None:
        raise CommandError(f"{field}: {text!r} is not a duration like 90s, 10m, 2h or 1d")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_time(text: str, field: str) -> datetime:
    """An ISO 8601 time with its zone (`2026-12-24T09:00:00Z`), or a CommandError naming `field`."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{field}: {text!r} is not a time like 2026-12-24T09:00:00Z") from None
    if moment.tzinfo is None:
        raise CommandError(f"{field}: {text!r} has no time zone (add Z or +01:00)")
    return moment
