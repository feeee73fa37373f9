"""The pure parts of `offload stats`: histogram percentiles, the dead-letter summary, the table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from offload.codec import EncryptionCodec, encryption_codec, new_key, parse_key
from offload.jobs.stats import (
    DeadLetterStats,
    JobCounts,
    QueueStats,
    Stats,
    histogram_quantile,
    key_stats,
    latency_stats,
    render_table,
    summary_by_kind,
)
from offload.settings import Settings
from offload.temporal import client_identity

SCRAPE = """\
# HELP offload_job_enqueue_to_done_latency_seconds from queueing a job to its end
# TYPE offload_job_enqueue_to_done_latency_seconds histogram
offload_job_enqueue_to_done_latency_seconds_bucket{kind="A",le="0.1"} 2
offload_job_enqueue_to_done_latency_seconds_bucket{kind="A",le="1"} 8
offload_job_enqueue_to_done_latency_seconds_bucket{kind="A",le="+Inf"} 10
offload_job_enqueue_to_done_latency_seconds_sum{kind="A"} 9
offload_job_enqueue_to_done_latency_seconds_count{kind="A"} 10
offload_job_enqueue_to_done_latency_seconds_bucket{kind="B",le="0.1"} 8
offload_job_enqueue_to_done_latency_seconds_bucket{kind="B",le="1"} 10
offload_job_enqueue_to_done_latency_seconds_bucket{kind="B",le="+Inf"} 10
offload_job_enqueue_to_done_latency_seconds_sum{kind="B"} 1
offload_job_enqueue_to_done_latency_seconds_count{kind="B"} 10
"""


def queue_stats(queue: str, type: str, **figures: Any) -> QueueStats:
    """A queue as DescribeTaskQueue would report it: the figures named, 0 for the rest."""
    idle = {"backlog": 0, "backlog_age_seconds": 0, "add_rate": 0, "dispatch_rate": 0, "pollers": 0}
    return QueueStats(queue=queue, type=type, **(idle | figures))


def test_quantiles_interpolate_within_buckets_as_prometheus_does() -> None:
    buckets = [(0.1, 10.0), (1.0, 20.0), (float("inf"), 20.0)]
    assert histogram_quantile(0.5, buckets) == 0.1
    assert histogram_quantile(0.75, buckets) == 0.55
    assert histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.99, [(1.0, 1.0), (float("inf"), 2.0)]) == 1.0


def test_latency_sums_histograms_over_their_labels() -> None:
    found = {lat.name: lat for lat in latency_stats(SCRAPE)}
    job = found["job enqueue-to-done"]
    assert job.count == 20
    assert job.p50 == 0.1
    assert found["activity execution"].count == 0
    assert found["activity execution"].p50 is None


def test_the_dead_letter_summary_counts_by_kind_and_status() -> None:
    summary = {
        "counts": {"email": {"dead": 2, "redriven": 1}, "report": {"discarded": 1}},
        "newest_ids": ["a", "b"],
        "continued_as_new": 0,
    }
    assert summary_by_kind(summary) == {
        "email": {"dead": 2, "redriven": 1},
        "report": {"discarded": 1},
    }
    assert summary_by_kind({"newest_ids": []}) == {}
    assert summary_by_kind("nonsense") == {}


def test_the_table_answers_each_question() -> None:
    stats = Stats(
        collected_at=datetime(2026, 1, 1, tzinfo=UTC),
        queues=[
            queue_stats(
                "offload-workflows", "workflow", backlog=7, backlog_age_seconds=90, add_rate=1.5
            )
        ],
        jobs=[JobCounts(kind="SendEmailWorkflow", running=7, closed_last_hour={"failed": 2})],
        dead_letters=DeadLetterStats(available=True, by_kind={"email": {"dead": 2, "redriven": 1}}),
        schedules=[],
        latency=latency_stats(SCRAPE),
        metrics_source="http://127.0.0.1:9464/metrics",
    )
    table = render_table(stats)
    assert "offload-workflows  workflow  7        90s" in table
    assert "SendEmailWorkflow  7        0          2" in table
    assert "job enqueue-to-done         20     100ms" in table
    assert "email  2     1         0" in table
    assert "schedules\nnone" in table


def test_the_table_shows_each_workers_keys_and_what_a_rotation_would_break() -> None:
    old, new = EncryptionCodec(parse_key(new_key())), EncryptionCodec(parse_key(new_key()))
    settings = Settings(_env_file=None, OFFLOAD_ENCRYPTION_KEY=new_key())  # type: ignore[call-arg]
    queue = queue_stats(
        "offload-email",
        "activity",
        pollers=2,
        poller_identities=[f"1@a {old.identity_label}", "2@b"],
    )
    keys = key_stats(settings, [queue])
    assert keys is not None
    assert keys.workers == {f"1@a {old.identity_label}": [old.key_id]}
    codec = encryption_codec(settings)
    assert codec is not None
    # Neither holds the other's current key: each would fail what the other encrypts.
    this = f"this process ({client_identity(settings)})"
    assert keys.gaps == [
        f"1@a {old.identity_label} cannot decrypt key {codec.key_id}, current at {this}",
        f"{this} cannot decrypt key {old.key_id}, current at 1@a {old.identity_label}",
    ]
    stats = Stats(
        collected_at=datetime(2026, 1, 1, tzinfo=UTC),
        queues=[queue],
        keys=keys,
        jobs=[],
        dead_letters=DeadLetterStats(available=True),
        schedules=[],
        latency=[],
        metrics_source="-",
    )
    table = render_table(stats)
    assert f"encryption keys: this process encrypts with key {codec.key_id}" in table
    assert f"1@a {old.identity_label}  {old.key_id}" in table
    assert f"rotation: 1@a {old.identity_label} cannot decrypt key {codec.key_id}" in table
    assert new.key_id not in table
