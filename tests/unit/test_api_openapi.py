"""The OpenAPI document describes every route, its inputs and the answers it can give."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.settings import Settings


@pytest.fixture
def document() -> dict[str, Any]:
    # The document is built from the routes alone: no database or Temporal behind them.
    app = create_app(Settings(_env_file=None), pool=cast(Pool, None), client=cast(Client, None))  # type: ignore[call-arg]
    return app.openapi()


def test_every_route_is_described_with_its_answers(document: dict[str, Any]) -> None:
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    answers = {key: set(operation["responses"]) for key, operation in operations.items()}
    assert set(answers) == {
        ("POST", "/leads"),
        ("POST", "/reports"),
        ("GET", "/reports/{report_id}"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
    }
    assert {"201", "413", "415", "422"} <= answers["POST", "/leads"]
    assert {"202", "401", "422", "503"} <= answers["POST", "/reports"]
    assert {"200", "401", "404", "503"} <= answers["GET", "/reports/{report_id}"]
    assert {"200", "503"} <= answers["GET", "/healthz"]
    for key, operation in operations.items():
        assert operation.get("description") or operation.get("summary"), key


def test_leads_take_an_idempotency_key_and_reports_a_bearer_token(
    document: dict[str, Any],
) -> None:
    leads = document["paths"]["/leads"]["post"]
    headers = {p["name"]: p for p in leads["parameters"] if p["in"] == "header"}
    assert headers["idempotency-key"]["required"] is False
    lead_schema = document["components"]["schemas"]["LeadIn"]
    assert set(lead_schema["required"]) == {"name", "email"}
    for path, method in (("/reports", "post"), ("/reports/{report_id}", "get")):
        assert document["paths"][path][method]["security"] == [{"HTTPBearer": []}]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_every_refusal_is_a_documented_problem(document: dict[str, Any]) -> None:
    leads = document["paths"]["/leads"]["post"]["responses"]
    assert {"400", "413", "415", "422", "429"} <= set(leads)
    assert "Retry-After" in leads["429"]["headers"]
    assert "Idempotency-Key" in leads["422"]["description"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and (path, status) != ("/healthz", "503"):
                    assert set(answer["content"]) == {"application/problem+json"}, (
                        method,
                        path,
                        status,
                    )


def test_every_integer_in_a_request_has_bounds_every_json_parser_keeps(
    document: dict[str, Any],
) -> None:
    user_id = document["components"]["schemas"]["ReportRequest"]["properties"]["user_id"]
    assert user_id["minimum"] == 1
    assert user_id["maximum"] == 2**53 - 1


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # These answers come before any route's work: no database or Temporal behind them.
    app = create_app(Settings(_env_file=None), pool=cast(Pool, None), client=cast(Client, None))  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("PUT", "/metrics", "GET"), ("PUT", "/reports/r1", "GET"), ("DELETE", "/leads", "POST")],
)
async def test_an_undeclared_method_is_a_405_with_allow(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await http.request(
        method, path, content=b"x", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 405, response.text
    assert allow in response.headers["allow"].split(", ")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe{not text", b'{"name": "Ada",}'])
async def test_a_body_that_is_not_json_is_one_documented_400_naming_the_body(
    http: httpx.AsyncClient, body: bytes
) -> None:
    response = await http.post("/leads", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert [error["field"] for error in problem["errors"]] == ["body"]
