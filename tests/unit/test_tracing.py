"""Tracing's configuration from the standard OTEL_* variables: off by default, and free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from offload import tracing


def test_an_unknown_exporter_is_refused_naming_the_variable() -> None:
    with pytest.raises(tracing.TracingConfigError, match="OTEL_TRACES_EXPORTER='jaeger'"):
        tracing.configure({"OTEL_TRACES_EXPORTER": "jaeger"})
    assert not tracing.enabled()


def test_unset_or_none_leaves_tracing_off_without_loading_the_sdk() -> None:
    # A fresh interpreter: what the processes import when no OTEL_TRACES_EXPORTER is set.
    code = (
        "import sys, starters.cli, api.app, workers.main\n"
        "from offload import tracing\n"
        "assert tracing.configure({}) is False\n"
        "assert tracing.configure({'OTEL_TRACES_EXPORTER': 'none'}) is False\n"
        "assert not tracing.enabled() and tracing.client_interceptors() == []\n"
        "assert tracing.carrier() is None\n"
        "with tracing.span('x'):\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(\n"
        "    ('opentelemetry.sdk', 'opentelemetry.instrumentation', 'opentelemetry.exporter'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
