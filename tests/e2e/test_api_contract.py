"""The API answers as its OpenAPI document says: schemathesis, every check, over real HTTP.

The API runs on uvicorn on a real database, Temporal and worker; schemathesis's CLI reads
`/openapi.json` from it and sends what an outside client could, seeded and bounded.
`schemathesis/schemathesis.toml` is its configuration (it says why).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.jobs.email import enqueue_email
from offload.jobs.start import StartOptions
from offload.models import EmailJob
from offload.settings import Settings
from tests.api import serving
from tests.reports import seed_leads

HERE = Path(__file__).parent / "schemathesis"
TOKEN = "contract-token"
SEED = 18
# Cases per operation and phase: a few hundred in all.
MAX_EXAMPLES = 15
RUN_TIMEOUT_SECONDS = 100


@pytest.mark.usefixtures("worker")
async def test_schemathesis_finds_nothing_with_every_check(
    settings: Settings, pool: Pool, client: Client, tmp_path: Path
) -> None:
    await seed_leads(pool, leads=20, agents=1)
    # The contract, not the rate limit (tests/e2e/test_api_rate_limits.py): one client, many cases.
    own = settings.model_copy(update={"api_token": SecretStr(TOKEN), "api_client_rate_limit": 0})
    # The job that GET /jobs/{id} and its cancel act on (schemathesis.toml names it).
    job = EmailJob(
        to="ada@example.com", template="lead-confirmation", idempotency_key="contract-job"
    )
    await enqueue_email(client, own, job, StartOptions(delay=timedelta(hours=1)))
    output = tmp_path / "schemathesis.txt"
    with output.open("wb") as log:
        async with serving(create_app(own, pool=pool, client=client), own) as url:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "schemathesis.cli",
                f"--config-file={HERE / 'schemathesis.toml'}",
                "run",
                f"{url}/openapi.json",
                "--checks=all",
                f"--seed={SEED}",
                f"--max-examples={MAX_EXAMPLES}",
                "--generation-database=none",
                "--workers=1",
                "--no-color",
                f"--header=Authorization: Bearer {TOKEN}",
                f"--report-dir={tmp_path}",
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=tmp_path,
            )
            try:
                async with asyncio.timeout(RUN_TIMEOUT_SECONDS):
                    await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    report = output.read_text()
    assert process.returncode == 0, report
    # It ran what it should have: every operation, every phase.
    assert "8 selected / 8 total" in report, report
    assert "No issues found" in report, report
