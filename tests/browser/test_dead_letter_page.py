"""The dead-letter page in headless Chromium, as an operator uses it: log in, see, redrive.

`OFFLOAD_SCREENSHOT=docs/dead-letters.png` saves a screenshot of the page (`make screenshot`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.dead_letters import find_dead_letter, list_dead_letters
from offload.models import EmailJob
from offload.settings import Settings
from tests.api import eventually, serving
from tests.dead_letters import refused_email

TOKEN = "operator-token-" + uuid.uuid4().hex


async def dead_letter_of(
    client: Client, settings: Settings, pool: Pool, sink: SmtpSink, to: str
) -> EmailJob:
    """A lead-confirmation email to `to` that the SMTP server refuses: one dead entry."""
    job, _ = await refused_email(client, settings, sink, to)

    async def recorded() -> bool:
        rows = await list_dead_letters(pool)
        return any(r["workflow_id"] == job.workflow_id for r in rows)

    await eventually(recorded)
    return job


@pytest.mark.usefixtures("worker")
async def test_an_operator_logs_in_sees_an_entry_redrives_it_and_sees_it_redriven(
    browser: BrowserContext, client: Client, settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    job = await dead_letter_of(client, settings, pool, smtp_sink, "ada@example.com")
    await dead_letter_of(client, settings, pool, smtp_sink, "grace@example.com")
    [listed] = [r for r in await list_dead_letters(pool) if r["workflow_id"] == job.workflow_id]
    entry = await find_dead_letter(pool, listed["id"])
    assert entry is not None
    own = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with serving(create_app(own, pool=pool, client=client), own) as url:
        page = await browser.new_page()
        await page.goto(f"{url}/admin/dead-letters")
        # Not logged in: the login form, and nothing of the queue.
        assert page.url == f"{url}/admin/login"
        await page.fill("#token", "wrong")
        await page.click("button[type=submit]")
        assert "token: wrong token" in await page.inner_text("main")
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        assert page.url == f"{url}/admin/dead-letters"
        [cookie] = [c for c in await browser.cookies() if c["name"] == "offload_token"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        row = page.locator(f"tr#{entry['id']}")
        text = await row.inner_text()
        assert "dead" in text and "SmtpPermanentError" in await page.inner_text("main")
        assert job.workflow_id in text and "lead-confirmation" in text
        # Personal fields are masked until asked for.
        assert "ada@example.com" not in await page.content()
        link = await row.locator(f"a:text('{job.workflow_id}')").get_attribute("href")
        assert link == (
            f"{settings.temporal_ui_url}/namespaces/default/workflows/"
            f"{job.workflow_id}/{entry['run_id']}/history"
        )
        if os.environ.get("OFFLOAD_SCREENSHOT"):
            await page.screenshot(path=Path(os.environ["OFFLOAD_SCREENSHOT"]), full_page=True)
        await page.click("text=Show personal fields")
        assert "ada@example.com" in await row.inner_text()

        smtp_sink.rules.set("ada@example.com", None)
        await row.locator("button", has_text="Redrive").click()
        redrive_id = f"{job.workflow_id}-redrive-1"
        assert f"redriven {entry['id']} as {redrive_id}" in await page.inner_text("[role=status]")
        row = page.locator(f"tr#{entry['id']}")
        assert "redriven" in await row.inner_text()
        assert await row.locator("button").count() == 0
        # The token never showed in a URL.
        assert TOKEN not in page.url

    result = await client.get_workflow_handle(redrive_id).result()
    assert result["status"] == "sent"
    [row_after] = [r for r in await list_dead_letters(pool) if r["id"] == entry["id"]]
    assert (row_after["status"], row_after["redrive_workflow_id"]) == ("redriven", redrive_id)
    assert [m["To"] for m in smtp_sink.messages()] == ["ada@example.com"]
