"""`send_email` under ActivityEnvironment, against a real aiosmtpd sink and PostgreSQL."""

from __future__ import annotations

import aiosmtplib
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities, SmtpConnections, SmtpTransientError
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.models import EmailJob
from offload.net import free_port
from offload.settings import Settings


def job(to: str = "ada@example.com", **changes: object) -> EmailJob:
    fields: dict[str, object] = {
        "to": to,
        "template": "lead-confirmation",
        "data": {"name": "Ada", "property": "12 Harbour View"},
    }
    return EmailJob.model_validate({**fields, **changes})


async def test_250_sends_and_logs_once(settings: Settings, pool: Pool, smtp_sink: SmtpSink) -> None:
    activities = EmailActivities(settings, pool)
    env = ActivityEnvironment()
    first = await env.run(activities.send_email, job())
    again = await env.run(activities.send_email, job())
    assert first.status == "sent"
    assert again.status == "already_sent"
    assert again.message_id == first.message_id
    [message] = smtp_sink.messages()
    assert message["Message-ID"] == first.message_id
    assert await pool.fetchval("SELECT count(*) FROM email_log") == 1


async def test_a_logged_key_is_already_sent_even_if_it_no_longer_composes(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    # The lookup runs while the message is composed: what it finds still decides.
    activities = EmailActivities(settings, pool)
    env = ActivityEnvironment()
    first = await env.run(activities.send_email, job(idempotency_key="k-1"))
    again = await env.run(
        activities.send_email, job("not an address", idempotency_key="k-1", template="gone")
    )
    assert again.status == "already_sent"
    assert again.message_id == first.message_id
    assert len(smtp_sink.messages()) == 1


async def test_the_local_first_attempt_sends_and_logs_like_the_queued_one(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    activities = EmailActivities(settings, pool)
    env = ActivityEnvironment()
    first = await env.run(activities.try_send_email, job())
    again = await env.run(activities.send_email, job())
    assert first is not None and first.status == "sent"
    assert again.status == "already_sent"
    assert again.message_id == first.message_id
    assert len(smtp_sink.messages()) == 1


async def test_a_worker_with_a_rate_limit_declines_the_local_attempt(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    limited = settings.model_copy(update={"email_rate_limit_per_second": 5.0})
    activities = EmailActivities(limited, pool)
    assert await ActivityEnvironment().run(activities.try_send_email, job()) is None
    assert smtp_sink.messages() == []
    assert await pool.fetchval("SELECT count(*) FROM email_log") == 0


async def test_451_is_retryable(settings: Settings, pool: Pool, smtp_sink: SmtpSink) -> None:
    smtp_sink.rules.set("later@example.com", "451 4.3.0 Try again later")
    with pytest.raises(SmtpTransientError, match="451"):
        await ActivityEnvironment().run(
            EmailActivities(settings, pool).send_email, job("later@example.com")
        )
    assert smtp_sink.messages() == []
    assert await pool.fetchval("SELECT count(*) FROM email_log") == 0


async def test_550_is_permanent(settings: Settings, pool: Pool, smtp_sink: SmtpSink) -> None:
    smtp_sink.rules.set("gone@example.com", "550 5.1.1 No such user")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            EmailActivities(settings, pool).send_email, job("gone@example.com")
        )
    assert caught.value.type == "SmtpPermanentError"
    assert caught.value.non_retryable
    assert "550" in caught.value.message


async def test_no_server_is_retryable(settings: Settings, pool: Pool) -> None:
    down = settings.model_copy(update={"smtp_port": free_port()})
    with pytest.raises(SmtpTransientError, match="connection failed"):
        await ActivityEnvironment().run(EmailActivities(down, pool).send_email, job())


@pytest.mark.parametrize(
    ("changes", "error_type"),
    [
        ({"to": "not-an-address"}, "InvalidEmailAddress"),
        ({"template": "no-such-template"}, "UnknownTemplate"),
        ({"data": {"name": "Ada"}}, "TemplateError"),
    ],
)
async def test_bad_jobs_are_permanent_and_send_nothing(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink, changes: dict[str, object], error_type: str
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(EmailActivities(settings, pool).send_email, job(**changes))
    assert caught.value.type == error_type
    assert caught.value.non_retryable
    assert smtp_sink.messages() == []


async def test_kept_connections_are_reused_dropped_after_a_failure_and_closed(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    activities = EmailActivities(settings, pool)
    opened: list[aiosmtplib.SMTP] = []

    def connect() -> aiosmtplib.SMTP:
        opened.append(activities.smtp_client())
        return opened[-1]

    activities.smtp = SmtpConnections(connect, 2)
    env = ActivityEnvironment()
    for n in range(3):
        await env.run(activities.send_email, job(idempotency_key=f"kept-{n}"))
    assert len(opened) == 1
    smtp_sink.rules.set("later@example.com", "451 4.3.0 Try again later")
    with pytest.raises(SmtpTransientError):
        await env.run(activities.send_email, job("later@example.com"))
    await env.run(activities.send_email, job(idempotency_key="kept-after-failure"))
    assert len(opened) == 2
    await activities.close()
    assert not any(smtp.is_connected for smtp in opened)
    assert len(smtp_sink.messages()) == 4


async def test_an_internationalised_address_is_sent_with_smtputf8(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    result = await ActivityEnvironment().run(
        EmailActivities(settings, pool).send_email, job("zoë@bücher.example")
    )
    [message] = smtp_sink.messages()
    assert result.status == "sent"
    assert message["To"] == "zoë@bücher.example"
    assert message["Message-ID"] == result.message_id


async def test_a_server_without_smtputf8_refuses_an_internationalised_address_for_good(
    settings: Settings, pool: Pool, ascii_only_sink: SmtpSink
) -> None:
    # No retry can make this server take the address: the job fails (and is dead-lettered)
    # at once, saying why, rather than spend its attempts.
    ascii_only = settings.model_copy(update={"smtp_port": ascii_only_sink.port})
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            EmailActivities(ascii_only, pool).send_email, job("zoe@bücher.example")
        )
    assert ascii_only_sink.messages() == []
    assert caught.value.type == "SmtpUtf8NotSupported"
    assert caught.value.non_retryable
    assert "SMTPUTF8" in caught.value.message
    assert "zoe@" not in caught.value.message
    assert await pool.fetchval("SELECT count(*) FROM email_log") == 0
