"""The parts of operator controls that need no server: durations, start options, queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from offload.jobs.control import JobQuery, visibility_query
from offload.jobs.errors import JobInputError
from offload.jobs.pause import check_pausable
from offload.jobs.start import StartOptions, parse_duration, parse_time
from offload.settings import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
    ],
)
def test_durations_read_as_people_write_them(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "delay") == expected


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "5x", "-3m"])
def test_a_bad_duration_names_its_option(text: str) -> None:
    with pytest.raises(JobInputError, match="is not a duration") as raised:
        parse_duration(text, "delay")
    assert raised.value.field == "delay"


def test_a_time_needs_its_zone() -> None:
    assert parse_time("2026-12-24T09:00:00Z", "at") == datetime(2026, 12, 24, 9, tzinfo=UTC)
    with pytest.raises(JobInputError, match="no time zone"):
        parse_time("2026-12-24T09:00:00", "at")
    with pytest.raises(JobInputError, match="is not a time"):
        parse_time("Christmas", "at")


def test_start_options_give_the_delay_until_the_job_runs() -> None:
    assert StartOptions().start_delay(NOW) is None
    assert StartOptions(delay=timedelta(minutes=10)).start_delay(NOW) == timedelta(minutes=10)
    at = StartOptions(at=NOW + timedelta(hours=2))
    assert at.start_delay(NOW) == timedelta(hours=2)
    # A time already past starts the job now.
    assert StartOptions(at=NOW - timedelta(hours=1)).start_delay(NOW) is None
    with pytest.raises(JobInputError, match="not both"):
        StartOptions(delay=timedelta(1), at=NOW).start_delay(NOW)
    with pytest.raises(ValueError, match="priority"):
        StartOptions(priority=6)


def test_the_visibility_query_covers_this_deployments_jobs_only() -> None:
    settings = Settings(_env_file=None, OFFLOAD_TASK_QUEUE_PREFIX="blue-")  # type: ignore[call-arg]
    query = visibility_query(
        settings, JobQuery(kind="email", status="scheduled", since=timedelta(hours=1)), NOW
    )
    assert query == (
        "WorkflowType IN ('SendEmailWorkflow') AND TaskQueue = 'blue-offload-workflows' "
        "AND ExecutionStatus = 'Running' AND ExecutionTime > '2026-12-01T12:00:00.000000Z' "
        "AND StartTime > '2026-12-01T11:00:00.000000Z'"
    )
    running = visibility_query(settings, JobQuery(status="running"), NOW)
    assert running.endswith(
        "AND ExecutionStatus = 'Running' AND ExecutionTime <= '2026-12-01T12:00:00.000000Z'"
    )
    for bad, field in ((JobQuery(kind="x' OR 1=1"), "kind"), (JobQuery(status="lost"), "status")):
        with pytest.raises(JobInputError, match=r"^unknown") as raised:
            visibility_query(settings, bad, NOW)
        assert raised.value.field == field


def test_only_a_kind_that_honours_the_gate_can_be_paused() -> None:
    check_pausable("email")
    with pytest.raises(JobInputError, match="'report' cannot be paused; pausable kinds: email"):
        check_pausable("report")
