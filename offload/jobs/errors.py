"""Domain errors of the client layer, shared by the CLI and the API.

Each carries a message that says what is wrong and, where one input is to blame, the name
of that field, so the CLI (exit code 2) and the API (422 with `field`) report it the same way.
"""

from __future__ import annotations


class JobInputError(ValueError):
    """Input a job cannot run with; nothing was started or changed.

    Attributes:
        field: the input at fault (`user_id`, `end`, `ids`, ...), or None for the whole request.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(JobInputError):
    """The request names something that does not exist (an agent, a report, an entry)."""


class RefusedError(JobInputError):
    """A valid request the current state refuses (an entry already redriven, for example)."""


class ConflictError(JobInputError):
    """The request names something that exists with other contents (a report id reused)."""
