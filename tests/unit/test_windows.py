"""Windows of scheduled runs come from the scheduled time, in the schedule's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime

from offload.windows import previous_day, previous_hour


def test_the_previous_hour_is_on_hour_boundaries() -> None:
    window = previous_hour(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert (window.start, window.end) == (
        datetime(2026, 11, 28, 9, tzinfo=UTC),
        datetime(2026, 11, 28, 10, tzinfo=UTC),
    )
    # A manual run at 10:37 covers the same hour as the 10:00 run.
    assert previous_hour(datetime(2026, 11, 28, 10, 37, 5, tzinfo=UTC)) == window


def test_the_previous_day_in_utc() -> None:
    day, window = previous_day(datetime(2026, 11, 28, 0, 0, tzinfo=UTC), "UTC")
    assert day == date(2026, 11, 27)
    assert window.start == datetime(2026, 11, 27, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 28, tzinfo=UTC)


def test_the_previous_day_in_another_time_zone() -> None:
    # Midnight in New York is 05:00 UTC in November; 04:00 UTC is still the day before there.
    day, window = previous_day(datetime(2026, 11, 28, 5, 0, tzinfo=UTC), "America/New_York")
    assert day == date(2026, 11, 27)
    assert window.end == datetime(2026, 11, 28, 5, tzinfo=UTC)
    assert previous_day(datetime(2026, 11, 28, 4, 0, tzinfo=UTC), "America/New_York")[0] == date(
        2026, 11, 26
    )
