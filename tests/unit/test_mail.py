"""Templates render with autoescape and strict variables; addresses and Message-IDs."""

from __future__ import annotations

import jinja2
import pytest

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
    with pytest.raises(mail.InvalidAddressError, match="invalid email address"):
        mail.check_address(address)


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
