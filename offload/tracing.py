"""Tracing with OpenTelemetry, set by the standard `OTEL_*` variables, and off when unset.

`OTEL_TRACES_EXPORTER` picks the exporter: `otlp` (OTLP over HTTP/protobuf to
`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. Jaeger's `http://jaeger:4318`), `console` (each span as
JSON on stdout, as it ends) or `none`, the default. `OTEL_SERVICE_NAME` names the process
(default `offload`). Unset, nothing of the OpenTelemetry SDK is imported and no span is made.

One trace follows a lead: the API's request span (FastAPI and asyncpg instrumentation), the
job's start and its workflow and activities (`temporalio.contrib.opentelemetry`, whose
interceptor the Temporal client carries into the worker), and the SMTP send. When the API
cannot start the job, the trace context saved in its outbox row lets the relay's start join
the request's trace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

EXPORTERS = ("otlp", "console", "none")
DEFAULT_SERVICE_NAME = "offload"

_enabled = False


class TracingConfigError(ValueError):
    """An `OTEL_*` variable Offload cannot use."""


def enabled() -> bool:
    """Whether this process traces (`configure` found an exporter, or a test installed one)."""
    return _enabled


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Install the tracer provider that `OTEL_TRACES_EXPORTER` asks for; True if tracing is on.

    Raises:
        TracingConfigError: `OTEL_TRACES_EXPORTER` names no exporter Offload knows.
    """
    name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "none"
    if name not in EXPORTERS:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={name!r}: use one of {', '.join(EXPORTERS)}"
        )
    if name == "none":
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create itself.
    service = environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    processor: SpanProcessor
    if name == "console":
        # Printed as each span ends, so a developer sees it at once.
        processor = SimpleSpanProcessor(ConsoleSpanExporter())
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    install(provider)
    return True


def install(provider: TracerProvider) -> None:
    """Make `provider` the process's tracer provider and turn tracing on (tests use it).

    OpenTelemetry sets a process's provider once: a later call keeps the first provider.
    """
    global _enabled
    from opentelemetry import trace

    if trace.get_tracer_provider() is not provider:
        trace.set_tracer_provider(provider)
    _enabled = True


def disable() -> None:
    """Turn tracing off for what is built from now on, and asyncpg's instrumentation with it
    (tests use it)."""
    global _enabled
    if not _enabled:
        return
    _enabled = False
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def shutdown() -> None:
    """Export the spans still buffered; the CLI calls it before its process leaves."""
    if not _enabled:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


def client_interceptors() -> list[Interceptor]:
    """The Temporal client's interceptors: the tracing one when on. Workers built on the
    client take it too, so workflows and activities join the trace of their start."""
    if not _enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def instrument_api(app: FastAPI) -> None:
    """Trace each request of `app`, and the asyncpg queries it makes, when tracing is on."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app)
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


@contextlib.contextmanager
def span(
    name: str, *, parent: Mapping[str, str] | None = None, **attributes: str | int
) -> Iterator[None]:
    """A span around the block when tracing is on, a child of `parent` (a carrier saved by
    `carrier()`) if given, else of the current span. No personal data in `attributes`."""
    if not _enabled:
        yield
        return
    from opentelemetry import propagate, trace

    context = propagate.extract(dict(parent)) if parent else None
    tracer = trace.get_tracer("offload")
    with tracer.start_as_current_span(name, context=context, attributes=attributes):
        yield


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers (`traceparent`), to save beside a job; None
    when tracing is off or no span is current."""
    if not _enabled:
        return None
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers or None
