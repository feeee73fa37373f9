"""`make bench`'s table: a goal missed is printed with what limits it."""

from __future__ import annotations

from bench.email import FAST_BARE, OFFLOAD, latency_rows, throughput_limit
from bench.rows import Row, render

LIMIT = "the send itself: the mail server and the database share the two cores"


def jobs_row(ratio: float, *, limited_by: str = LIMIT) -> Row:
    return Row.with_goal(
        ">=",
        0.85,
        name="email jobs per second",
        figure="54.0 jobs/s",
        baseline="68.9 workflows/s",
        ratio=ratio,
        limited_by=limited_by,
    )


def test_a_missed_goal_is_printed_with_what_limits_it() -> None:
    out = render([jobs_row(0.79)])
    assert f"  missed: email jobs per second (0.79, goal >= 0.85): {LIMIT}" in out.splitlines()


def test_a_goal_met_prints_no_reason() -> None:
    out = render([jobs_row(0.91)])
    assert "missed" not in out
    assert LIMIT not in out


def test_a_missed_goal_with_no_known_limit_says_so() -> None:
    out = render([jobs_row(0.79, limited_by="")])
    assert (
        "  missed: email jobs per second (0.79, goal >= 0.85): no known cause; "
        "see docs/performance.md" in out.splitlines()
    )


def test_a_row_without_a_goal_is_never_missed() -> None:
    row = Row("shape", "12.0 ms", "22.2 ms", 0.54, "(none)", met=True)
    assert "missed" not in render([row])


def test_the_jobs_per_second_limit_names_this_runs_extra_cpu() -> None:
    offload = {"this process": 16.3, "temporal": 14.8, "postgres": 0.5, "sink": 1.5}
    bare = {"this process": 12.9, "temporal": 13.6, "postgres": 0.0, "sink": 0.0}
    cause = throughput_limit([offload, bare])
    assert "the mail server and PostgreSQL 2.0 ms a job" in cause
    assert "this process 3.4 ms and the Temporal server 1.2 ms more than the baseline" in cause
    assert cause.endswith('docs/performance.md, "Throughput: why 0.85 is not reached"')


def test_the_jobs_per_second_limit_weighs_the_send_alone_against_what_085_allows() -> None:
    # The bare shape's 26.5 ms a job at 0.85 of its rate leaves 4.7 ms for anything more; the
    # send alone (deliver called directly) costs 3.1 ms of it, 2.0 ms of them outside this process.
    bare = {"this process": 12.9, "temporal": 13.6, "postgres": 0.0, "sink": 0.0}
    offload = {"this process": 16.3, "temporal": 14.8, "postgres": 0.5, "sink": 1.5}
    # The Temporal server's CPU meanwhile is its idle pollers': not the send's.
    alone = {"this process": 1.1, "temporal": 0.4, "postgres": 0.5, "sink": 1.5}
    cause = throughput_limit([offload, bare], alone)
    assert "0.85 of the bare shape's rate allows 4.7 ms a job more than its 26.5 ms" in cause
    assert (
        "the send alone (deliver called directly, no workflow) costs 3.1 ms: this process 1.1, "
        "the mail server 1.5, PostgreSQL 0.5" in cause
    )
    assert "more than the whole allowance" not in cause
    # The job's 6.6 ms more than the no-op, less the send's 3.1 ms.
    assert "leaving 1.6 ms for the rest of the job, which costs 3.5 ms more here" in cause
    # A slower send on the same bare shape: nothing around it could reach the goal.
    heavy = throughput_limit([offload, bare], {**alone, "this process": 3.0})
    assert "costs 5.0 ms" in heavy
    assert "more than the whole allowance: no job shape that sends this email reaches 0.85" in heavy
    assert heavy.endswith('docs/performance.md, "Throughput: why 0.85 is not reached"')


def test_a_missed_latency_goal_names_the_sends_fixed_time_on_this_runs_floor() -> None:
    # A quick hour: a 13 ms floor, and the send's 8 ms on top of it is more than half.
    found = {"latency": {OFFLOAD: [21.0, 21.2, 21.4], FAST_BARE: [13.0, 13.2, 13.4]}, "load": ""}
    row = latency_rows(found, "SQLite dev server")[0]
    assert not row.met
    assert row.limited_by.startswith(
        "the send's fixed time: 8.0 ms of deliver (lookup, SMTP conversation, email_log insert) "
        "on a bare floor of 13.2 ms"
    )
    assert row.limited_by.endswith('docs/performance.md, "Latency: what the floor is made of"')
