"""One trace from `POST /leads` to the SMTP send, seen by an in-memory span exporter.

The API, the worker and the relay run in this process on the real services, with
Offload's tracing on (as `OTEL_TRACES_EXPORTER` would turn it on) and its spans kept in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from api.app import create_app
from api.leads import LeadIn, confirmation_email
from offload import tracing
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs import outbox
from offload.jobs.outbox import OutboxRelay
from offload.settings import Settings
from offload.temporal import connect
from tests.api import delivered, eventually, serving
from tests.harness import running_worker

LEAD = {"name": "Ada Lovelace", "email": "ada@example.com", "property": "12 Harbour View"}

_PROVIDER = TracerProvider()
_EXPORTER = InMemorySpanExporter()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, its spans kept in memory."""
    _EXPORTER.clear()
    tracing.install(_PROVIDER)
    try:
        yield _EXPORTER
    finally:
        tracing.disable()
        _EXPORTER.clear()


@dataclass
class Traced:
    """What each test here runs on: its spans, a traced client and the real services."""

    spans: InMemorySpanExporter
    client: Client
    settings: Settings
    pool: Pool
    sink: SmtpSink


@pytest.fixture
async def traced(
    spans: InMemorySpanExporter, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> AsyncIterator[Traced]:
    # Connected after tracing is on, so it (and the workers on it) carry the interceptor.
    yield Traced(spans, await connect(settings), settings, pool, smtp_sink)


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]


async def sent(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    """The spans of SMTP sends so far."""
    return named(spans, "smtp send")


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


async def test_one_trace_runs_from_the_request_through_the_workflow_to_the_smtp_send(
    traced: Traced,
) -> None:
    spans, client, settings, pool = traced.spans, traced.client, traced.settings, traced.pool
    app = create_app(settings, pool=pool, client=client)
    async with (
        running_worker(client, settings, pool),
        serving(app, settings) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        posted = await http.post("/leads", json=LEAD)
        assert posted.status_code == 201, posted.text
        await delivered(traced.sink, 1)

        [send] = await eventually(lambda: sent(spans))
    [request] = [s for s in named(spans, "POST /leads") if s.parent is None]
    trace = [s for s in spans.get_finished_spans() if trace_id(s) == trace_id(request)]
    names = {s.name for s in trace}
    assert trace_id(send) == trace_id(request)
    assert "StartWorkflow:SendEmailWorkflow" in names, names
    assert "RunWorkflow:SendEmailWorkflow" in names, names
    # The fast path: the send's first attempt is a local activity in the workflow worker.
    assert "RunActivity:try_send_email" in names, names
    # asyncpg's instrumentation: the lead's INSERT is in the request's trace.
    assert any(s.attributes and s.attributes.get("db.system") == "postgresql" for s in trace)
    assert send.attributes is not None and send.attributes["template"] == "lead-confirmation"
    # No personal data in any span.
    for span in trace:
        assert "ada@example.com" not in str(dict(span.attributes or {})), span.name


async def test_a_job_the_relay_starts_joins_the_trace_of_the_request_that_queued_it(
    traced: Traced,
) -> None:
    spans, client, settings, pool = traced.spans, traced.client, traced.settings, traced.pool
    job = confirmation_email(settings, 1, LeadIn.model_validate(LEAD))
    # The request queues the job and ends; the API never starts it (it died, say).
    with tracing.span("POST /leads (died after commit)"):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.write(conn, "email", job.workflow_id, job)
    [request] = named(spans, "POST /leads (died after commit)")
    relay_settings = settings.model_copy(update={"outbox_grace_seconds": 0.0})
    async with running_worker(client, settings, pool):
        assert await OutboxRelay(client, relay_settings, pool).relay_once() == 1
        await delivered(traced.sink, 1)

        [send] = await eventually(lambda: sent(spans))
    [relay] = named(spans, "outbox relay start")
    assert relay.parent is not None and relay.parent.span_id == request.context.span_id
    assert trace_id(relay) == trace_id(send) == trace_id(request)
