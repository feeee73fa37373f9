"""The seed data: the same seed gives the same leads, spread over the year before `end`."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from offload.seed import lead_rows

END = date(2026, 7, 1)


def rows(seed: int) -> list[tuple[object, ...]]:
    return list(lead_rows(2000, [1, 2, 3], random.Random(seed), END))


def test_the_same_seed_gives_the_same_leads_and_another_seed_others() -> None:
    assert rows(1) == rows(1)
    assert rows(1) != rows(2)


def test_leads_spread_over_the_year_several_properties_and_sources_per_agent() -> None:
    leads = rows(3)
    end = datetime(2026, 7, 1, tzinfo=UTC)
    created = [lead[7] for lead in leads]
    assert all(end - timedelta(days=365) <= c < end for c in created)  # type: ignore[operator]
    assert len({c.month for c in created}) == 12  # type: ignore[attr-defined]
    for agent in (1, 2, 3):
        mine = [lead for lead in leads if lead[0] == agent]
        assert len({lead[4] for lead in mine}) >= 3
        assert len({lead[5] for lead in mine}) >= 4
    assert all(0 <= int(lead[6]) <= 100 for lead in leads)  # type: ignore[call-overload]
