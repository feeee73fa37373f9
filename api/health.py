"""`GET /healthz` (the database and Temporal answer) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.context import ContextParam
from offload.db import QUERIES

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    ok: bool
    database: str
    temporal: str


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "a dependency does not answer"}},
)
async def healthz(context: ContextParam) -> Any:
    """200 when PostgreSQL and Temporal both answer, else 503 naming the one that does not."""

    async def database() -> str:
        await context.pool.fetchval(QUERIES.check_database)
        return "ok"

    async def temporal() -> str:
        await context.client.service_client.check_health()
        return "ok"

    results: list[str] = []
    for check in (database, temporal):
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                results.append(await check())
        except Exception as err:
            results.append(f"unavailable ({type(err).__name__})")
    health = Health(ok=all(r == "ok" for r in results), database=results[0], temporal=results[1])
    return JSONResponse(health.model_dump(), status_code=200 if health.ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(context: ContextParam) -> Response:
    """The API's metrics in the Prometheus text format."""
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)
