"""Lead scoring rules: a lead's score (0-100) from its recency, source and completeness.

The rules are documented in docs/schedules.md; `sync-lead-scores` applies them hourly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Points by source: a referral converts best, a bought list worst.
SOURCE_POINTS: dict[str, int] = {
    "referral": 40,
    "open-house": 35,
    "website": 25,
    "portal": 20,
    "social": 15,
}
OTHER_SOURCE_POINTS = 10

# Points by the lead's age at the scoring time: (younger than, points), first match wins.
RECENCY_POINTS: list[tuple[timedelta, int]] = [
    (timedelta(days=1), 30),
    (timedelta(days=7), 20),
    (timedelta(days=30), 10),
]

PHONE_POINTS = 15
PROPERTY_POINTS = 10
FULL_NAME_POINTS = 5
MAX_SCORE = 100


@dataclass(frozen=True)
class LeadFacts:
    """What the score depends on."""

    source: str
    created_at: datetime
    phone: str
    property: str
    name: str


def score_lead(lead: LeadFacts, at: datetime) -> int:
    """The score of `lead` at `at`: source + recency + completeness, at most 100."""
    score = SOURCE_POINTS.get(lead.source.strip().lower(), OTHER_SOURCE_POINTS)
    age = at - lead.created_at
    for younger_than, points in RECENCY_POINTS:
        if age < younger_than:
            score += points
            break
    if lead.phone.strip():
        score += PHONE_POINTS
    if lead.property.strip():
        score += PROPERTY_POINTS
    if len(lead.name.split()) >= 2:
        score += FULL_NAME_POINTS
    return min(score, MAX_SCORE)
