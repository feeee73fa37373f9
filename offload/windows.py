"""The time window a scheduled run covers, from its scheduled start time.

Pure functions of the standard library, so workflows can use them: a run that starts late,
is caught up or is backfilled covers the window of the time it was scheduled for.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from offload.models import TimeWindow

SCHEDULED_START_TIME = "TemporalScheduledStartTime"


def previous_hour(at: datetime) -> TimeWindow:
    """The hour before `at`, on hour boundaries: 10:00 (or 10:37) gives 09:00-10:00."""
    end = at.replace(minute=0, second=0, microsecond=0)
    return TimeWindow(start=end - timedelta(hours=1), end=end)


def previous_day(at: datetime, time_zone: str) -> tuple[date, TimeWindow]:
    """The day before `at` in `time_zone`, and its window: midnight to midnight there."""
    zone = ZoneInfo(time_zone)
    today = at.astimezone(zone).date()
    day = today - timedelta(days=1)
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(today, time(), tzinfo=zone)
    return day, TimeWindow(start=start, end=end)
