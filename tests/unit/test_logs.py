"""PersonalDataFilter: what any handler writes names errors and jobs, not people."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from offload.codec import EncryptionKeyError
from offload.logs import PersonalDataFilter, error_chain, redact_addresses

ADDRESS = "ada.lovelace@example.com"


@pytest.fixture
def written() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(PersonalDataFilter())
    logger = logging.getLogger(f"test-logs-{id(out)}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, out
    logger.removeHandler(handler)


def test_an_exception_is_logged_as_its_type_chain_and_frames_without_messages(
    written: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = written
    try:
        try:
            raise ValueError(f"550 5.1.1 <{ADDRESS}> refused for Ada Lovelace")
        except ValueError as err:
            raise ApplicationError(f"refused: {err}", type="SmtpPermanentError") from err
    except ApplicationError:
        logger.warning("Exception in ASGI application", exc_info=True)
    text = out.getvalue()
    assert "[ApplicationError[SmtpPermanentError] <- ValueError]" in text
    assert "Traceback (most recent call last):" in text
    assert "test_logs.py" in text
    assert "ada" not in text.lower()
    assert "Lovelace" not in text


def test_sdk_arguments_that_are_not_scalars_become_their_type() -> None:
    record = logging.LogRecord(
        "temporalio.worker._workflow", logging.DEBUG, __file__, 1,
        "Received workflow activation:\n%s (%d)", (Payload(data=b'{"name": "Ada"}'), 3), None,
    )  # fmt: skip
    PersonalDataFilter().filter(record)
    assert record.getMessage() == "Received workflow activation:\n<Payload> (3)"


def test_addresses_left_in_a_message_are_redacted(
    written: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = written
    logger.info("to %s, cc <%s>", ADDRESS, "b@example.org")
    assert out.getvalue().strip() == "to <address>, cc <<address>>"
    assert redact_addresses("x'ada@example.com'") == "x'<address>'"


def test_an_error_that_vouches_for_its_messages_keeps_them() -> None:
    err = ApplicationError("Failed decoding arguments")
    err.__cause__ = EncryptionKeyError("payload encrypted with key 'abc'")
    assert error_chain(err) == (
        "ApplicationError <- EncryptionKeyError: payload encrypted with key 'abc'"
    )
