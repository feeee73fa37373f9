"""Settings that no job could work with are refused when they are read, naming the variable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from offload import mail
from offload.settings import Settings


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "mail_from",
    ["Büro <büro@offload.example>", "noreply@bücher.example", "Offload", "Offload <>"],
)
def test_a_sender_address_no_email_could_carry_is_refused(mail_from: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(MAIL_FROM=mail_from)
    [error] = refused.value.errors()
    assert error["loc"] == ("MAIL_FROM",)
    assert "ASCII address" in error["msg"]


@pytest.mark.parametrize(
    "mail_from",
    ["Offload <noreply@offload.localhost>", "Offlöad Büro <noreply@example.com>", "a@b.example"],
)
def test_a_sender_every_email_can_carry_is_taken_and_composes(mail_from: str) -> None:
    taken = settings(MAIL_FROM=mail_from).mail_from
    assert taken == mail_from
    composed = mail.compose(
        "lead-confirmation",
        {"name": "Ada", "property": "Mill House"},
        to="ada@example.com",
        idempotency_key="k",
        mail_from=taken,
        date=datetime(2026, 1, 2, tzinfo=UTC),
    )
    assert composed.wire() is not None
