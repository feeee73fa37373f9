"""`OTEL_TRACES_EXPORTER=console offload dev`: one `POST /leads` prints one trace, from the
API's request span to the worker's SMTP send.

As in test_dev_command.py, the services come from the test, on free ports.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from offload.dev.stack import SmtpSink
from offload.net import free_port
from offload.settings import Settings
from tests.harness import running_dev


def printed_spans(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (JSON objects) among the log lines."""
    decoder = json.JSONDecoder()
    spans, at = [], 0
    while (at := text.find("{\n", at)) != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(value, dict) and "context" in value:
            spans.append(value)
        at = end
    return spans


async def test_a_lead_prints_spans_of_the_api_and_the_worker_in_one_trace(
    settings: Settings, smtp_sink: SmtpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "offload-dev-test")
    settings = settings.model_copy(update={"api_port": free_port(), "metrics_address": ""})
    log = tmp_path / "dev.log"
    async with running_dev(settings, log) as dev:
        deadline = time.monotonic() + 60
        lead = {"name": "Ada Lovelace", "email": "ada@example.com"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
            posted = await http.post("/leads", json=lead)
        assert posted.status_code == 201, posted.text
        while not any(s["name"] == "smtp send" for s in printed_spans(log.read_text())):
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
    assert dev.returncode == 0, log.read_text()
    spans = printed_spans(log.read_text())
    [request] = [s for s in spans if s["name"] == "POST /leads" and s["parent_id"] is None]
    trace = {s["name"] for s in spans if s["context"]["trace_id"] == request["context"]["trace_id"]}
    assert {"StartWorkflow:SendEmailWorkflow", "RunActivity:try_send_email", "smtp send"} <= trace
    assert request["resource"]["attributes"]["service.name"] == "offload-dev-test"
    assert "ada@example.com" not in log.read_text()
