"""Who may use the dead-letter page, and what a refused request changes: nothing.

The entry is a row of `dead_letters` as the dead-letter workflow writes it; every request
here is refused before any update would reach the workflow.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.settings import Settings
from tests.api import serving

TOKEN = "operator-token-" + uuid.uuid4().hex
ENTRY = "dl-" + uuid.uuid4().hex[:12]
PAGE = "/admin/dead-letters"


@pytest.fixture
async def http(settings: Settings, pool: Pool, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    await pool.execute(
        "INSERT INTO dead_letters (id, kind, workflow_id, run_id, workflow_type, input,"
        " error_type, error_message, attempts, failed_at)"
        " VALUES ($1, 'email', 'email-x', 'run-x', 'SendEmailWorkflow', $2::jsonb,"
        " 'SmtpPermanentError', 'recipient refused: 550 <ada@example.com>', 1, $3)",
        ENTRY,
        '{"to": "ada@example.com", "template": "lead-confirmation"}',
        datetime.now(UTC),
    )
    own = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with (
        serving(create_app(own, pool=pool, client=client), own) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        yield http


async def status_of(pool: Pool) -> str:
    return str(await pool.fetchval("SELECT status FROM dead_letters WHERE id = $1", ENTRY))


async def test_the_page_wants_the_token_in_a_header_or_the_login_cookie_never_the_url(
    http: httpx.AsyncClient,
) -> None:
    for url in (PAGE, f"{PAGE}?token={TOKEN}"):
        anonymous = await http.get(url)
        assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/admin/login")
    wrong = await http.get(PAGE, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Authorization" in wrong.text
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    page = await http.get(PAGE, headers=bearer)
    assert page.status_code == 200 and ENTRY in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "ada@example.com" not in page.text
    revealed = await http.get(PAGE, params={"reveal": "1"}, headers=bearer)
    assert "ada@example.com" in revealed.text
    bad = await http.get(PAGE, params={"status": "lost"}, headers=bearer)
    assert bad.status_code == 400 and "status" in bad.text


async def test_forms_without_their_csrf_token_or_with_bad_ids_change_nothing(
    http: httpx.AsyncClient, pool: Pool
) -> None:
    login_form = await http.get("/admin/login")
    csrf = http.cookies["offload_csrf"]
    assert login_form.status_code == 200
    wrong = await http.post("/admin/login", data={"csrf_token": csrf, "token": "nope"})
    assert wrong.status_code == 401 and "token: wrong token" in wrong.text
    forged = await http.post("/admin/login", data={"token": TOKEN})
    assert forged.status_code == 403 and "csrf_token" in forged.text
    logged_in = await http.post("/admin/login", data={"csrf_token": csrf, "token": TOKEN})
    assert (logged_in.status_code, logged_in.headers["location"]) == (303, PAGE)
    assert TOKEN not in logged_in.headers["location"]
    assert (await http.get(PAGE)).status_code == 200

    for form in ({"ids": ENTRY}, {"ids": ENTRY, "csrf_token": "x" * 43}):
        for action in ("redrive", "discard"):
            refused = await http.post(f"{PAGE}/{action}", data=form)
            assert refused.status_code == 403 and "csrf_token" in refused.text, action
    bad_id = await http.post(f"{PAGE}/redrive", data={"csrf_token": csrf, "ids": "dl-nothex"})
    assert bad_id.status_code == 400 and "ids" in bad_id.text and "dl-nothex" in bad_id.text
    none = await http.post(f"{PAGE}/discard", data={"csrf_token": csrf})
    assert none.status_code == 400 and "choose at least one entry" in none.text
    as_json = await http.post(f"{PAGE}/discard", json={"csrf_token": csrf, "ids": [ENTRY]})
    assert as_json.status_code == 415
    assert await status_of(pool) == "dead"
