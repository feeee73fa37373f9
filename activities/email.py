"""Email activities: render a template, send it over SMTP once per idempotency key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiosmtplib
import jinja2
from asyncpg import Record
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.pause import PauseGate
from offload import mail, tracing
from offload.db import QUERIES, Pool
from offload.logs import redact_addresses
from offload.models import EmailJob, EmailResult
from offload.settings import Settings

log = logging.getLogger(__name__)


class SmtpTransientError(Exception):
    """A 4xx answer or a lost connection: worth another attempt."""


def permanent(error_type: str, message: str) -> ApplicationError:
    """A failure that no retry can heal: the job stops (and is dead-lettered) at once."""
    return ApplicationError(message, type=error_type, non_retryable=True)


def classify_smtp_error(err: Exception) -> Exception:
    """Map an aiosmtplib error to a retryable error or a non-retryable `ApplicationError`.

    5xx means the server will never take this message, nor will a server without SMTPUTF8
    take it to an internationalised address; 4xx and connection errors may heal.
    Servers often echo the recipient in their reply: the message keeps the reply's code and
    words, with each address replaced by `<address>`, since it travels into logs.
    """
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        refusals = err.recipients
        code = min((r.code for r in refusals), default=0)
        reasons = "; ".join(f"{r.code} {redact_addresses(r.message)}" for r in refusals)
        if code >= 500:
            return permanent("SmtpPermanentError", f"recipient refused: {reasons}")
        return SmtpTransientError(f"recipient deferred: {reasons}")
    if isinstance(err, aiosmtplib.SMTPResponseException):
        text = f"SMTP {err.code} {redact_addresses(err.message)}"
        if 500 <= err.code < 600:
            return permanent("SmtpPermanentError", text)
        return SmtpTransientError(text)
    if isinstance(err, aiosmtplib.SMTPNotSupported):
        # aiosmtplib raises it, before MAIL, for an internationalised address the server
        # cannot take: without SMTPUTF8 the message must not be sent (RFC 6531, 3.2).
        return permanent(
            "SmtpUtf8NotSupported",
            "the mail server does not take internationalised addresses (no SMTPUTF8)",
        )
    # SMTPServerDisconnected, SMTPConnectError, timeouts and socket errors.
    return SmtpTransientError(
        f"SMTP connection failed: {type(err).__name__}: {redact_addresses(str(err))}"
    )


async def send_composed(smtp: aiosmtplib.SMTP, composed: mail.ComposedEmail) -> None:
    """Send `composed` over a connected client: the bytes flattened once (`wire()`), or, for
    a message to an internationalised address, through `send_message`, which asks the
    server for SMTPUTF8. Both put the same envelope and bytes on the wire; the first skips
    `send_message` taking the message apart again (a third of a send's CPU in the worker)."""
    wire = composed.wire()
    if wire is None:
        await smtp.send_message(composed.message)
    else:
        await smtp.sendmail(wire.sender, wire.recipients, wire.data)


def already_sent(found: Record) -> EmailResult:
    """The result of an email that `email_log` says went out already."""
    return EmailResult(
        status="already_sent",
        message_id=found["message_id"],
        to=found["recipient"],
        sent_at=found["sent_at"],
    )


class SmtpConnections:
    """At most `size` open SMTP connections, reused from one send to the next.

    A new connection costs a TCP handshake, the greeting, EHLO (and STARTTLS and login)
    before the first byte of mail: reusing one roughly doubles what a worker can send.
    A connection that failed in any way is dropped, never reused, so a half-finished
    conversation cannot leak into the next message; one idle for `max_idle_seconds` is
    closed before the server times it out. With `size` 0 every send opens and closes its
    own connection.
    """

    def __init__(
        self,
        connect: Callable[[], aiosmtplib.SMTP],
        size: int,
        *,
        max_idle_seconds: float = 30.0,
    ) -> None:
        self._connect = connect
        self.size = size
        self.max_idle_seconds = max_idle_seconds
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._slots = asyncio.Semaphore(max(size, 1))
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """A connected client for one message; it goes back to the pool only if all went well."""
        if self.size == 0:
            async with self._connect() as fresh:
                yield fresh
            return
        async with self._slots:
            smtp = self._take_idle()
            if smtp is None:
                smtp = self._connect()
                await smtp.connect()
            try:
                yield smtp
            except BaseException:
                smtp.close()
                raise
            if self._closed:
                await self._quit(smtp)
            else:
                self._idle.append((smtp, time.monotonic()))

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            smtp, since = self._idle.pop()
            # A server that closed the connection shows as not connected; one idle too long may
            # be closed by the server while we speak.
            if smtp.is_connected and time.monotonic() - since < self.max_idle_seconds:
                return smtp
            smtp.close()
        return None

    @staticmethod
    async def _quit(smtp: aiosmtplib.SMTP) -> None:
        # QUIT is a courtesy: a server already gone changes nothing.
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()
        smtp.close()

    async def close(self) -> None:
        """Say QUIT on every idle connection; those in use are closed when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(smtp) for smtp, _ in idle))


class EmailActivities:
    """Activities that send email; the worker builds one with its settings and pool.

    With `keep_connections` above 0 it reuses up to that many SMTP connections between
    sends, and whoever built it calls `close()` when done (the worker does, on shutdown);
    with 0 each send opens and closes its own connection.
    """

    def __init__(self, settings: Settings, pool: Pool, *, keep_connections: int = 0) -> None:
        self.settings = settings
        self.pool = pool
        self.smtp = SmtpConnections(self.smtp_client, keep_connections)
        self.gate = PauseGate(pool)

    def smtp_client(self) -> aiosmtplib.SMTP:
        """A client for the configured SMTP server (not yet connected)."""
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_seconds,
        )

    async def close(self) -> None:
        """Close the SMTP connections kept open between sends."""
        await self.smtp.close()

    def compose(self, job: EmailJob, date: datetime) -> mail.ComposedEmail:
        """The message of `job`, or the non-retryable error that no attempt can heal."""
        try:
            return mail.compose(
                job.template,
                job.data,
                to=job.to,
                idempotency_key=job.idempotency_key,
                mail_from=self.settings.mail_from,
                date=date,
            )
        except mail.InvalidAddressError as err:
            raise permanent("InvalidEmailAddress", str(err)) from None
        except mail.UnknownTemplateError as err:
            raise permanent("UnknownTemplate", str(err)) from None
        except jinja2.TemplateError as err:
            raise permanent("TemplateError", f"template {job.template!r}: {err}") from None

    @activity.defn
    async def try_send_email(self, job: EmailJob) -> EmailResult | None:
        """The first attempt of an email job, as a local activity in the workflow worker.

        None, sending nothing, when this worker has an SMTP rate limit: only the email
        queue holds it across workers, so the job goes there. Otherwise `send_email`.
        """
        if self.settings.email_rate_limit_per_second is not None:
            return None
        # A paused kind: the queued `send_email` waits the pause out (`run_unless_paused`).
        if await self.gate.is_paused("email"):
            return None
        return await self.send_email(job)

    @activity.defn
    async def send_email(self, job: EmailJob) -> EmailResult:
        """Send `job` unless its idempotency key is in `email_log` already (`deliver`).

        While the email kind is paused it raises `KindPaused` before doing anything.
        """
        await self.gate.check("email")
        return await self.deliver(job, workflow_id=activity.info().workflow_id)

    async def deliver(self, job: EmailJob, *, workflow_id: str | None) -> EmailResult:
        """Send `job` unless its idempotency key is in `email_log` already; log it as sent.

        The `Message-ID` comes from the key, so if the worker dies between sending and
        logging, the one extra copy a retry sends carries the same `Message-ID`. The
        benchmarks' peers (bench/peers.py) call this too, so they do the same work.
        """
        # The lookup is in flight while the message is composed (CPU, about half a
        # millisecond): what it finds decides, and a message composed in vain is dropped.
        lookup = asyncio.ensure_future(
            self.pool.fetchrow(QUERIES.find_email_log, job.idempotency_key)
        )
        sent_at = datetime.now(UTC)
        try:
            composed = self.compose(job, sent_at)
        except Exception:
            found = await lookup
            if found is not None:
                return already_sent(found)
            raise
        found = await lookup
        if found is not None:
            return already_sent(found)
        message_id, to = composed.message_id, composed.to
        try:
            with tracing.span("smtp send", template=job.template):
                async with self.smtp.connection() as smtp:
                    await send_composed(smtp, composed)
        except aiosmtplib.SMTPException as err:
            raise classify_smtp_error(err) from err
        except OSError as err:
            raise classify_smtp_error(err) from err

        await self.pool.execute(
            QUERIES.insert_email_log,
            job.idempotency_key,
            message_id,
            to,
            job.template,
            workflow_id,
            sent_at,
        )
        # The template name and key only: addresses are personal data and stay out of logs.
        log.info("sent %s email %s", job.template, job.idempotency_key)
        return EmailResult(status="sent", message_id=message_id, to=to, sent_at=sent_at)
