"""An idempotency key cannot carry CR/LF into an email's headers, from the CLI or a job."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from offload.models import EmailJob
from tests.harness import offload_parser

SPLITTING = ["abc\r\nBcc: victim@example.com", "abc\nX: y", "abc\rdef", "with space", "ключ"]


@pytest.mark.parametrize("key", SPLITTING)
def test_the_cli_refuses_a_key_that_is_not_visible_ascii(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["send-email", "--to", "a@example.com", "--template", "lead-confirmation"]
    with pytest.raises(SystemExit) as exited:
        offload_parser().parse_args([*args, "--idempotency-key", key])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--idempotency-key" in err
    assert "victim@example.com" not in err


def test_the_cli_takes_a_visible_ascii_key() -> None:
    args = offload_parser().parse_args(
        ["send-email", "--to", "a@example.com", "--template", "x", "--idempotency-key", "k-1:2"]
    )
    assert args.idempotency_key == "k-1:2"


@pytest.mark.parametrize("key", SPLITTING)
def test_an_email_job_refuses_a_key_that_would_split_its_header(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        EmailJob(to="a@example.com", template="lead-confirmation", idempotency_key=key)
    assert [e["loc"] for e in refused.value.errors()] == [("idempotency_key",)]
