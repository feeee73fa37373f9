"""The API's Prometheus metrics, in a registry of their own per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class ApiMetrics:
    """Every metric the API serves on `/metrics`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Histogram(
            "offload_api_request_seconds",
            "Time to answer a request, by route, method and status.",
            ["route", "method", "status"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.leads = Counter(
            "offload_api_leads_total", "Leads saved (replays excluded).", registry=self.registry
        )
        self.job_starts = Counter(
            "offload_api_job_starts_total",
            "Jobs the API started after a commit, by outcome (started, failed, skipped: "
            "left to the outbox relay; relayed: left to the relays it woke, without its "
            "worker).",
            ["outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "offload_api_rate_limited_total",
            "Abuse limits applied, by limit: client (a request refused with 429), recipient "
            "(a lead saved without its confirmation email).",
            ["limit"],
            registry=self.registry,
        )
        self.after_response_failures = Counter(
            "offload_api_after_response_failures_total",
            "after_response tasks that failed, by task and reason (error, timeout, overloaded).",
            ["task", "reason"],
            registry=self.registry,
        )
        self.after_response_done = Counter(
            "offload_api_after_response_done_total",
            "after_response tasks that finished, by task.",
            ["task"],
            registry=self.registry,
        )
