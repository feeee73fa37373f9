"""Property-based: no body, header or content type makes the API answer 500.

In process (httpx's ASGI transport) on a real database and Temporal: every answer is
either a success or a JSON error that names what was wrong.
"""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.settings import Settings
from tests.reports import seed_leads

TOKEN = "fuzz-token"
FIXED_KEY = "the-same-key"
EXAMPLES = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# Latin-1, as headers travel; control characters and all.
header_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=40)


def lead_field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return good | st.text() | json_values


lead_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": lead_field(st.text(string.ascii_letters + " ", min_size=1, max_size=30)),
        "email": lead_field(st.emails()),
        "phone": lead_field(st.text(string.digits + "+ ", max_size=20)),
        "property": lead_field(st.text(max_size=40)),
        "source": lead_field(st.sampled_from(["website", "zillow", ""])),
        "extra": json_values,
    },
)
# What PostgreSQL, JSON or an encoder may choke on: NUL, controls, a lone surrogate.
awkward_text = st.sampled_from(["\x00", "\x1f", "\x7f", "\ud800", "\u00e9", "\u20ac"]).map(
    lambda c: f"a{c}b"
)
valid_leads = st.fixed_dictionaries(
    {
        "name": st.text(string.ascii_letters + " -'", min_size=1, max_size=30),
        "email": st.emails(),
    },
    optional={
        "phone": st.text(string.digits + "+ ", max_size=20),
        "property": st.text(max_size=40) | awkward_text,
        "source": st.text(string.ascii_lowercase, min_size=1, max_size=10) | awkward_text,
    },
)
content_types = (
    st.just("application/json")
    | st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/ld+json",
            "APPLICATION/JSON",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    )
    | header_text.map(lambda text: text.strip())
)


def encoded(body: Any) -> bytes:
    # ASCII escapes carry lone surrogates and NaN to the server, where they belong.
    return json.dumps(body).encode()


bodies = st.one_of(
    valid_leads.map(encoded),
    lead_bodies.map(encoded),
    json_values.map(encoded),
    st.binary(max_size=200),
)


@dataclass
class Fuzzed:
    """The app under test, a client talking to it in process, and what it has made so far."""

    app: FastAPI
    http: httpx.AsyncClient
    agent: int
    reports: list[str] = field(default_factory=list)


@pytest.fixture
async def fuzzed(
    settings: Settings, pool: Pool, client: Client, worker: None
) -> AsyncIterator[Fuzzed]:
    await seed_leads(pool, leads=20, agents=1)
    agent = int(await pool.fetchval("SELECT min(id) FROM agents"))
    # One client sends every case: the rate limit would answer most of them 429 (its own test
    # is test_api_rate_limits).
    own = settings.model_copy(update={"api_token": SecretStr(TOKEN), "api_client_rate_limit": 0})
    app = create_app(own, pool=pool, client=client)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        yield Fuzzed(app, http, agent)


def check_answer(response: httpx.Response) -> None:
    """Not a 500; a JSON error naming each problem, or the documented success."""
    event(f"{response.request.method} {response.status_code}")
    assert response.status_code < 500 or response.status_code == 503, (
        response.status_code,
        response.text,
    )
    if response.status_code >= 400:
        body = response.json()
        assert body["success"] is False, body
        assert body["errors"] and all("field" in e and e["message"] for e in body["errors"]), body


@settings(EXAMPLES, max_examples=200)
@given(
    body=bodies,
    content_type=content_types,
    key=st.none() | header_text | st.just(FIXED_KEY) | st.uuids().map(str),
)
async def test_no_lead_post_answers_500(
    fuzzed: Fuzzed, body: bytes, content_type: str, key: str | None
) -> None:
    http = fuzzed.http
    headers = {"content-type": content_type}
    if key is not None:
        headers["idempotency-key"] = key
    response = await http.post(
        "/leads", content=body, headers={k: v.encode("latin-1") for k, v in headers.items()}
    )
    check_answer(response)
    if response.status_code == 201:
        assert response.json()["success"] is True
        assert isinstance(response.json()["id"], int)


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)).map(date.isoformat)


@st.composite
def nearly_valid_reports(draw: st.DrawFn, agent: int) -> dict[str, Any]:
    start = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)))
    end = start + timedelta(days=draw(st.integers(min_value=-3, max_value=400)))
    body: dict[str, Any] = {
        "user_id": draw(st.sampled_from([agent] * 3) | st.integers()),
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    if draw(st.booleans()):
        body["report_id"] = draw(st.uuids().map(str) | st.uuids().map(str) | st.text(max_size=10))
    return body


def report_bodies(agent: int) -> st.SearchStrategy[Any]:
    anything = st.fixed_dictionaries(
        {},
        optional={
            "user_id": st.just(agent) | st.integers() | json_values,
            "start": dates | json_values,
            "end": dates | json_values,
            "report_id": st.text(max_size=20) | json_values,
        },
    )
    return nearly_valid_reports(agent) | anything | json_values


@EXAMPLES
@given(data=st.data())
async def test_no_route_of_the_openapi_document_answers_500(
    fuzzed: Fuzzed, data: st.DataObject
) -> None:
    http = fuzzed.http
    operations = [
        (method.upper(), path, operation)
        for path, methods in fuzzed.app.openapi()["paths"].items()
        for method, operation in methods.items()
    ]
    method, path, operation = data.draw(st.sampled_from(operations))
    # Mostly the documented method; sometimes another, which must be a JSON 405.
    method = data.draw(st.sampled_from([method] * 3 + ["GET", "POST", "PUT", "DELETE"]))
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            # Sometimes a report this run started, so that its status is asked for too.
            # The same draws whatever the run made so far: Hypothesis replays choices.
            value = data.draw(st.text(min_size=1, max_size=30))
            known = data.draw(st.integers(min_value=-1, max_value=20))
            if known >= 0 and fuzzed.reports:
                value = fuzzed.reports[known % len(fuzzed.reports)]
            path = path.replace("{" + parameter["name"] + "}", quote(value, safe=""))
    headers = {"content-type": "application/json"}
    authorization = data.draw(
        st.sampled_from([f"Bearer {TOKEN}"] * 4 + ["Bearer wrong", f"Basic {TOKEN}", "Bearer", ""])
        | header_text
    )
    if authorization:
        headers["authorization"] = authorization
    query = data.draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
    content = encoded(data.draw(report_bodies(fuzzed.agent))) if method != "GET" else b""
    response = await http.request(
        method,
        path,
        params=query,
        content=content,
        headers={k: v.encode("latin-1") for k, v in headers.items()},
    )
    if response.status_code == 202:
        fuzzed.reports.append(response.json()["id"])
    if path == "/metrics" and response.status_code == 200:
        return
    if path == "/healthz" and response.status_code == 200:
        assert response.json()["ok"] is True
        return
    check_answer(response)


async def test_openapi_json_is_the_document_of_every_route(fuzzed: Fuzzed) -> None:
    served = await fuzzed.http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == fuzzed.app.openapi()
    assert set(served.json()["paths"]) == {
        "/leads",
        "/reports",
        "/reports/{report_id}",
        "/healthz",
        "/metrics",
    }


# Fewer: an accepted report's status is a Temporal query, the slowest request here.
@settings(EXAMPLES, max_examples=60)
@given(data=st.data())
async def test_no_report_request_answers_500(fuzzed: Fuzzed, data: st.DataObject) -> None:
    http = fuzzed.http
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    if data.draw(st.integers(min_value=0, max_value=4)) == 0:
        headers["authorization"] = data.draw(header_text)
    raw = {k: v.encode("latin-1") for k, v in headers.items()}
    body = encoded(data.draw(report_bodies(fuzzed.agent)))
    accepted = await http.post("/reports", content=body, headers=raw)
    check_answer(accepted)
    other = quote(data.draw(st.text(min_size=1, max_size=30)), safe="")
    for location in (accepted.headers.get("location"), f"/reports/{other}"):
        if location is not None:
            status = await http.get(location, headers=raw)
            check_answer(status)
            if status.status_code == 200:
                assert status.json()["status"] in ("running", "completed"), status.json()
