"""What the dead-letter page shows of a job's input before the operator asks for more."""

from __future__ import annotations

from api.dead_letter_page import MASK, mask_personal


def test_personal_fields_are_masked_at_any_depth_and_the_rest_is_kept() -> None:
    job = {
        "to": "ada@example.com",
        "template": "lead-confirmation",
        "data": {"name": "Ada Lovelace", "phone": "+44 20 7946 0000", "property": "12 Harbour"},
        "recipients": [{"email": "grace@example.com", "agent_id": 7}],
        "retry": {"maximum_attempts": 5},
    }
    assert mask_personal(job) == {
        "to": MASK,
        "template": "lead-confirmation",
        "data": {"name": MASK, "phone": MASK, "property": "12 Harbour"},
        "recipients": MASK,
        "retry": {"maximum_attempts": 5},
    }
    assert mask_personal([{"agent_email": "x@example.com", "agent_id": 1}]) == [
        {"agent_email": MASK, "agent_id": 1}
    ]


def test_addresses_quoted_in_text_are_masked() -> None:
    message = "recipient refused: 550 <ada@example.com> no such user"
    assert mask_personal(message) == f"recipient refused: 550 <{MASK}> no such user"
    assert mask_personal("timed out after 10 s") == "timed out after 10 s"
