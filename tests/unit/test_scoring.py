"""The lead scoring rules of docs/schedules.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from offload.scoring import LeadFacts, score_lead

AT = datetime(2026, 11, 28, 10, tzinfo=UTC)


def lead(**fields: object) -> LeadFacts:
    base: dict[str, object] = {
        "source": "website",
        "created_at": AT - timedelta(days=60),
        "phone": "",
        "property": "",
        "name": "Ada",
    }
    return LeadFacts(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "points"),
    [("referral", 40), ("open-house", 35), ("website", 25), ("portal", 20), ("social", 15)],
)
def test_source_points(source: str, points: int) -> None:
    assert score_lead(lead(source=source), AT) == points


def test_an_unknown_source_scores_least_and_case_does_not_matter() -> None:
    assert score_lead(lead(source="flyer"), AT) == 10
    assert score_lead(lead(source=" Referral "), AT) == 40


@pytest.mark.parametrize(
    ("age", "points"),
    [
        (timedelta(hours=23), 30),
        (timedelta(days=1), 20),
        (timedelta(days=6), 20),
        (timedelta(days=7), 10),
        (timedelta(days=29), 10),
        (timedelta(days=30), 0),
    ],
)
def test_recency_is_measured_at_the_scoring_time(age: timedelta, points: int) -> None:
    assert score_lead(lead(created_at=AT - age), AT) == 25 + points


def test_completeness_phone_property_full_name() -> None:
    assert score_lead(lead(phone="555 0101"), AT) == 25 + 15
    assert score_lead(lead(property="12 Harbour View"), AT) == 25 + 10
    assert score_lead(lead(name="Ada Lovelace"), AT) == 25 + 5
    assert score_lead(lead(phone="  ", property=" "), AT) == 25


def test_the_score_is_capped_at_100() -> None:
    best = lead(
        source="referral",
        created_at=AT - timedelta(hours=1),
        phone="555",
        property="Mill House",
        name="Ada Lovelace",
    )
    assert score_lead(best, AT) == 100
    assert (
        score_lead(
            lead(
                source="open-house", created_at=best.created_at, phone="5", property="x", name="A B"
            ),
            AT,
        )
        == 95
    )
