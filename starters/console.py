"""How commands talk to the console: the error type for bad input, and output formats."""

from __future__ import annotations

import json
import sys
from typing import Any


class CommandError(Exception):
    """Bad input to a command: the message says what is wrong; the command exits 2."""


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def fail(message: str) -> None:
    print(f"offload: error: {message}", file=sys.stderr)
