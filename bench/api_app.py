"""`python -m bench.api_app`: `offload api` with the benchmark's baseline route beside POST /leads.

`POST /bench/bare-lead` validates the same body and does one INSERT, nothing else: what
`bench.api` measures POST /leads against. It is added here, around the app, so the app that
`offload api` serves has no benchmark route.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api.context import ContextParam
from api.errors import BODY_ERRORS
from api.leads import LeadCreated, LeadIn
from api.server import serve_api
from offload.db import QUERIES
from offload.settings import Settings

BARE = "/bench/bare-lead"


async def create_bare_lead(lead: LeadIn, context: ContextParam) -> Any:
    """The benchmark's baseline: the same validation and one INSERT, nothing else."""
    lead_id: int = await context.pool.fetchval(
        QUERIES.insert_lead, lead.name, lead.email, lead.phone, lead.property, lead.source, None
    )
    return JSONResponse(LeadCreated(id=lead_id).model_dump(), status_code=201)


def add_bare_route(app: FastAPI) -> None:
    app.add_api_route(
        BARE,
        create_bare_lead,
        methods=["POST"],
        status_code=201,
        response_model=LeadCreated,
        responses=BODY_ERRORS,
        include_in_schema=False,
    )


if __name__ == "__main__":
    # `bench.api` stops it with SIGTERM, which ends the process.
    asyncio.run(serve_api(Settings(), asyncio.Event(), extend=add_bare_route))
