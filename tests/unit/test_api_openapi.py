"""The OpenAPI document describes every route, its inputs and the answers it can give."""

from __future__ import annotations

from typing import Any, cast

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
        ("GET", "/jobs"),
        ("GET", "/jobs/{workflow_id}"),
        ("POST", "/jobs/{workflow_id}/cancel"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
    }
    assert {"201", "413", "415", "422"} <= answers["POST", "/leads"]
    assert {"202", "401", "422", "503"} <= answers["POST", "/reports"]
    assert {"200", "401", "404", "503"} <= answers["GET", "/reports/{report_id}"]
    assert {"200", "401", "422", "503"} <= answers["GET", "/jobs"]
    assert {"200", "401", "404", "503"} <= answers["GET", "/jobs/{workflow_id}"]
    assert {"202", "401", "404", "409", "503"} <= answers["POST", "/jobs/{workflow_id}/cancel"]
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
    for path, method in (
        ("/reports", "post"),
        ("/reports/{report_id}", "get"),
        ("/jobs", "get"),
        ("/jobs/{workflow_id}", "get"),
        ("/jobs/{workflow_id}/cancel", "post"),
    ):
        assert document["paths"][path][method]["security"] == [{"HTTPBearer": []}]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
