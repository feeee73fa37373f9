"""The API served in-process by uvicorn, on the test's pool and Temporal client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.settings import Settings
from tests.api import serving


@pytest.fixture
async def api_url(settings: Settings, pool: Pool, client: Client) -> AsyncIterator[str]:
    async with serving(create_app(settings, pool=pool, client=client), settings) as url:
        yield url
