"""Templates render with autoescape and strict variables; addresses and Message-IDs."""

from __future__ import annotations

import email
import email.policy
import random
import string
from datetime import UTC, datetime
from email.message import EmailMessage

import jinja2
import pytest
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message

from offload import mail
from offload.models import EmailJob


def test_lead_confirmation_names_the_lead_and_property() -> None:
    rendered = mail.render("lead-confirmation", {"name": "Ada", "property": "12 Harbour View"})
    assert rendered.subject == "Thanks Ada, we received your enquiry about 12 Harbour View"
    assert "Hi Ada," in rendered.text
    assert "<strong>12 Harbour View</strong>" in rendered.html


def test_html_is_escaped_and_text_is_not() -> None:
    rendered = mail.render(
        "lead-confirmation", {"name": "<script>alert(1)</script>", "property": "Tom & Jerry's"}
    )
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Tom &amp; Jerry&#39;s" in rendered.html
    assert "Hi <script>alert(1)</script>," in rendered.text


def test_a_missing_variable_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError, match="property"):
        mail.render("lead-confirmation", {"name": "Ada"})


def test_an_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(mail.UnknownTemplateError, match="lead-confirmation"):
        mail.render("no-such-template", {})


@pytest.mark.parametrize("address", ["not-an-address", "a@", "@example.com", "a b@example.com"])
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(mail.InvalidAddressError, match=r"^to: not a valid email address") as err:
        mail.check_address(address)
    # The message names the field, never the value: it travels into logs.
    assert address not in str(err.value)


def test_message_id_is_deterministic_per_key_and_uses_the_sender_domain() -> None:
    first = mail.message_id("key-1", "Offload <noreply@example.org>")
    assert first == mail.message_id("key-1", "Offload <noreply@example.org>")
    assert first != mail.message_id("key-2", "Offload <noreply@example.org>")
    assert first.startswith("<") and first.endswith("@example.org>")


def test_the_idempotency_key_is_derived_from_the_content_when_none_is_given() -> None:
    a = EmailJob(to="a@example.com", template="lead-confirmation", data={"x": 1, "y": 2})
    b = EmailJob(to="a@example.com", template="lead-confirmation", data={"y": 2, "x": 1})
    c = EmailJob(to="b@example.com", template="lead-confirmation", data={"x": 1, "y": 2})
    given = EmailJob(to="a@example.com", template="lead-confirmation", idempotency_key="k")
    assert a.idempotency_key == b.idempotency_key != c.idempotency_key
    assert given.workflow_id == "email-k"


@pytest.mark.parametrize(
    ("name", "sender", "to"),
    [
        ("Ada", "Offload <noreply@offload.localhost>", "ada@example.com"),
        ("Zoë Ångström " * 8, "Offlöad Büro <noreply@offload.localhost>", "zoe@example.com"),
        ("Zoë", "Offload <noreply@offload.localhost>", "zoe@bücher.example"),
        ("Zoë", "Offload <noreply@offload.localhost>", "zoë@bücher.example"),
    ],
)
def test_a_built_message_reads_back_as_it_was_written(name: str, sender: str, to: str) -> None:
    rendered = mail.render("lead-confirmation", {"name": name, "property": "Mill House"})
    message = mail.build_message(
        rendered,
        mail_from=sender,
        to=to,
        message_id="<abc@offload.localhost>",
        date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        idempotency_key="key-1",
    )
    utf8 = not to.isascii()
    raw = flatten_message(message, utf8=utf8)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["From"] == sender
    assert parsed["To"] == to
    assert parsed["Subject"] == rendered.subject
    assert parsed["Message-ID"] == "<abc@offload.localhost>"
    assert parsed["X-Offload-Idempotency-Key"] == "key-1"
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    # An 8-bit body goes out with CRLF line ends, as SMTP wants them.
    assert text is not None and text.get_content().replace("\r\n", "\n") == rendered.text
    assert html is not None and html.get_content().replace("\r\n", "\n") == rendered.html


def test_a_body_that_spells_the_boundary_does_not_split_the_message() -> None:
    mid = "<abc@offload.localhost>"
    trap = "\n--=_offload_abc@offload.localhost--\n"
    rendered = mail.render("lead-confirmation", {"name": "Ada", "property": trap})
    message = mail.build_message(
        rendered,
        mail_from="Offload <noreply@offload.localhost>",
        to="ada@example.com",
        message_id=mid,
        date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        idempotency_key="key-1",
    )
    parsed = email.message_from_bytes(flatten_message(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = parsed.get_body(preferencelist=("plain",))
    assert text is not None and trap.strip() in text.get_content()


def test_a_short_header_is_written_as_compat32_folds_it() -> None:
    # The wire policy skips `email.header.Header` for a one-line ASCII header that fits;
    # for every value, long or short, it must write the bytes compat32 writes.
    rnd = random.Random(17)
    alphabet = string.ascii_letters + string.digits + string.punctuation + "  \t"
    names = ["Subject", "To", "From", "X-Offload-Idempotency-Key", "Content-Type"]
    for _ in range(20_000):
        value = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 90)))
        name = rnd.choice(names)
        assert mail.WIRE_POLICY.fold_binary(name, value) == email.policy.compat32.fold_binary(
            name, value
        ), (name, value)


@pytest.mark.parametrize(
    ("name", "sender", "to"),
    [
        ("Ada", "Offload <noreply@offload.localhost>", "ada@example.com"),
        ("Ada " + "Augusta " * 12, "noreply@offload.localhost", "ada@example.com"),
        ("Zoë Ångström " * 8, "Offlöad Büro <noreply@offload.localhost>", "zoe@example.com"),
    ],
)
def test_the_wire_bytes_are_what_send_message_would_send(name: str, sender: str, to: str) -> None:
    composed = mail.compose(
        "lead-confirmation",
        {"name": name, "property": "Mill House"},
        to=to,
        idempotency_key="key-1",
        mail_from=sender,
        date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    wire = composed.wire()
    assert wire is not None
    # What aiosmtplib's send_message hands to sendmail for this message.
    assert wire.sender == extract_sender(composed.message)
    assert wire.recipients == extract_recipients(composed.message)
    assert wire.data == flatten_message(composed.message)
    assert wire.data.isascii(), "7-bit: no BODY=8BITMIME, no SMTPUTF8 needed"


def test_an_address_beyond_ascii_goes_through_send_message() -> None:
    composed = mail.compose(
        "lead-confirmation",
        {"name": "Zoë", "property": "Mill House"},
        to="zoe@bücher.example",
        idempotency_key="key-1",
        mail_from="Offload <noreply@offload.localhost>",
        date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    # SMTPUTF8 is send_message's to ask for (and to refuse when the server lacks it).
    assert composed.wire() is None
