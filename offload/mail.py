"""Email content: Jinja2 templates rendered with autoescape, and the MIME message built from them.

Each template is a folder under `offload/templates/email/` with `subject.txt`, `body.txt`
and `body.html`. A variable the template uses but the data lacks is an error, never an
empty string in a customer's inbox.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime
from email import charset
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr, parseaddr
from importlib import resources
from typing import Any

import jinja2
from email_validator import EmailNotValidError, validate_email

_TEMPLATE_ROOT = resources.files("offload").joinpath("templates", "email")
_PARTS = ("subject.txt", "body.txt", "body.html")


class UnknownTemplateError(LookupError):
    """No template of that name."""


class InvalidAddressError(ValueError):
    """A recipient address that no server would accept."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _loader() -> jinja2.BaseLoader:
    # A dict loader over the packaged files works the same from a wheel and a checkout.
    sources: dict[str, str] = {}
    for folder in _TEMPLATE_ROOT.iterdir():
        if folder.is_dir():
            for part in _PARTS:
                sources[f"{folder.name}/{part}"] = folder.joinpath(part).read_text()
    return jinja2.DictLoader(sources)


_ENV = jinja2.Environment(
    loader=_loader(),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def template_names() -> list[str]:
    """The names of the templates that exist."""
    return sorted({name.split("/")[0] for name in _ENV.list_templates()})


def render(template: str, data: dict[str, Any]) -> RenderedEmail:
    """Render the three parts of `template` with `data`.

    Raises:
        UnknownTemplateError: no template of that name.
        jinja2.UndefinedError: the template uses a variable that `data` lacks.
    """
    if template not in template_names():
        raise UnknownTemplateError(
            f"unknown template {template!r}; known: {', '.join(template_names())}"
        )
    subject, text, html = (_ENV.get_template(f"{template}/{part}").render(data) for part in _PARTS)
    return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)


def check_address(address: str) -> str:
    """The normalised form of a recipient address, or `InvalidAddressError` saying why not."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as err:
        # Name the field, not its value: this message travels into logs and failures.
        raise InvalidAddressError(
            f"to: not a valid email address ({_unquoted(str(err))})"
        ) from None


def _unquoted(reason: str) -> str:
    # email-validator's reasons can quote parts of the address ("invalid characters: 'x'").
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)


@functools.lru_cache(maxsize=16)
def sender_address(mail_from: str) -> str:
    """The address of `mail_from` (`Name <address>`): the envelope sender, as aiosmtplib's
    `send_message` takes it from the From header. Parsed once per setting, not per email."""
    return parseaddr(mail_from)[1]


def check_sender(mail_from: str) -> str:
    """`mail_from` if every email can carry it, else `ValueError` saying why.

    It is the envelope sender of every email and its From: an address beyond ASCII would
    need SMTPUTF8 for every message; a name may be beyond ASCII (RFC 2047 encodes it).
    """
    local, at, domain = sender_address(mail_from).rpartition("@")
    if not (at and local and domain and (local + domain).isascii()):
        raise ValueError(
            "must be an ASCII address, with a name if you like: Offload <noreply@example.com>"
        )
    return mail_from


def message_id(idempotency_key: str, mail_from: str) -> str:
    """The `Message-ID` of the email sent under `idempotency_key`: the same for every copy."""
    domain = sender_address(mail_from).rpartition("@")[2] or "offload.localhost"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


# Bodies in UTF-8, quoted-printable: readable in the raw message, safe for any line length.
_BODY_CHARSET = charset.Charset("utf-8")
_BODY_CHARSET.body_encoding = charset.QP


class ShortHeadersPolicy(Compat32):
    """compat32, writing a header that needs no folding as it is.

    compat32 folds every header through `email.header.Header`: most of the CPU of flattening
    a confirmation email, though none of its headers needs folding. A one-line ASCII header
    that fits in `max_line_length` comes out of that unchanged, so it is written directly;
    every other header is folded as compat32 folds it (tests/unit/test_mail.py compares them).
    """

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (
            isinstance(value, str)
            and value.isascii()
            and len(name) + 2 + len(value) <= (self.max_line_length or 0)
            and "\r" not in value
            and "\n" not in value
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


WIRE_POLICY = ShortHeadersPolicy()


@dataclass(frozen=True)
class Wire:
    """What `SMTP.sendmail` takes: the envelope sender and recipients, the message's bytes."""

    sender: str
    recipients: list[str]
    data: bytes


@dataclass(frozen=True)
class ComposedEmail:
    """A message ready to send: its normalised recipient, its `Message-ID`, the MIME message,
    and the envelope sender (the address of `mail_from`)."""

    to: str
    message_id: str
    message: Message
    sender: str

    def wire(self) -> Wire | None:
        """The envelope and the bytes `send_message` would send, flattened once with
        `WIRE_POLICY`; None for a message to an internationalised address (built as an
        `EmailMessage`): it needs SMTPUTF8, which `send_message` asks the server for."""
        if isinstance(self.message, EmailMessage):
            return None
        out = io.BytesIO()
        BytesGenerator(out, policy=WIRE_POLICY).flatten(self.message)
        return Wire(sender=self.sender, recipients=[self.to], data=out.getvalue())


def compose(
    template: str,
    data: dict[str, Any],
    *,
    to: str,
    idempotency_key: str,
    mail_from: str,
    date: datetime,
) -> ComposedEmail:
    """Check the address, render `template` with `data` and build the message, its
    `Message-ID` derived from `idempotency_key` (so every copy of one email carries the same).

    Raises:
        InvalidAddressError: `to` is not an address a server would accept.
        UnknownTemplateError: no template of that name.
        jinja2.TemplateError: the template uses a variable that `data` lacks.
    """
    recipient = check_address(to)
    rendered = render(template, data)
    mid = message_id(idempotency_key, mail_from)
    message = build_message(
        rendered,
        mail_from=mail_from,
        to=recipient,
        message_id=mid,
        date=date,
        idempotency_key=idempotency_key,
    )
    sender = sender_address(mail_from)
    return ComposedEmail(to=recipient, message_id=mid, message=message, sender=sender)


def build_message(
    rendered: RenderedEmail,
    *,
    mail_from: str,
    to: str,
    message_id: str,
    date: datetime,
    idempotency_key: str,
) -> Message:
    """A multipart/alternative message (text and HTML) with Offload's headers.

    Built with the classic (compat32) MIME classes: they cost a quarter of the CPU of
    `EmailMessage`, whose header parsing was most of a send's work in the worker. Only an
    internationalised recipient address (sent with SMTPUTF8) needs `EmailMessage`.
    """
    # `to` is normalised by `check_address`: a dot-atom local part, never quoted. `Address`
    # refuses a local part beyond ASCII (RFC 6532 allows it, with SMTPUTF8): such an
    # address goes into the header as it is.
    recipient = str(Address(addr_spec=to)) if to.isascii() else to
    headers = {"Message-ID": message_id, "Date": format_datetime(date)}
    headers["X-Offload-Idempotency-Key"] = idempotency_key
    if not recipient.isascii():
        utf8 = EmailMessage()
        utf8["From"], utf8["To"], utf8["Subject"] = mail_from, recipient, rendered.subject
        for name, value in headers.items():
            utf8[name] = value
        utf8.set_content(rendered.text)
        utf8.add_alternative(rendered.html, subtype="html")
        return utf8
    # A boundary of our own: the generator would pick a random one and compile a regex
    # for it per message (a third of flattening it). "=_" never occurs in quoted-printable
    # text, so it cannot collide with the bodies.
    msg = MIMEMultipart("alternative", boundary=f"=_offload_{message_id.strip('<>')}")
    msg["From"] = mail_from if mail_from.isascii() else formataddr(parseaddr(mail_from), "utf-8")
    msg["To"] = recipient
    if rendered.subject.isascii():
        msg["Subject"] = rendered.subject
    else:
        msg["Subject"] = Header(rendered.subject, "utf-8", header_name="Subject")  # type: ignore[assignment]
    for name, value in headers.items():
        msg[name] = value
    msg.attach(MIMEText(rendered.text, "plain", _BODY_CHARSET))  # type: ignore[arg-type]
    msg.attach(MIMEText(rendered.html, "html", _BODY_CHARSET))  # type: ignore[arg-type]
    return msg
