"""The outbox relay's housekeeping: old answers and started rows go, pending rows stay."""

from __future__ import annotations

from temporalio.client import Client

from offload.db import Pool
from offload.jobs.outbox import OutboxRelay
from offload.settings import Settings


async def test_the_relay_prunes_what_is_past_retention_and_never_a_pending_row(
    client: Client, settings: Settings, pool: Pool
) -> None:
    settings = settings.model_copy(update={"api_retention_hours": 24})
    rows = [
        # (workflow id, age in hours, started)
        ("old-started", 25, True),
        ("old-pending", 25, False),
        ("new-started", 23, True),
    ]
    for workflow_id, hours, started in rows:
        await pool.execute(
            "INSERT INTO outbox (kind, workflow_id, payload, created_at, started_at)"
            " VALUES ('email', $1, '{}', now() - make_interval(hours => $2),"
            " CASE WHEN $3 THEN now() END)",
            workflow_id,
            hours,
            started,
        )
    for key, hours in (("old-key", 25), ("new-key", 1)):
        await pool.execute(
            "INSERT INTO idempotency_keys (key, route, request_hash, status, body, created_at)"
            " VALUES ($1, 'POST /leads', 'h', 201, '{}', now() - make_interval(hours => $2))",
            key,
            hours,
        )

    assert await OutboxRelay(client, settings, pool).prune_once() == (1, 1)

    left = {r["workflow_id"] for r in await pool.fetch("SELECT workflow_id FROM outbox")}
    assert left == {"old-pending", "new-started"}
    keys = {r["key"] for r in await pool.fetch("SELECT key FROM idempotency_keys")}
    assert keys == {"new-key"}
