"""A rolling key rotation on the dev server: old-key and new-key workers side by side.

The documented procedure (docs/security.md) in three rolling phases: the new key out as
decrypt-only everywhere, then current, then the old one retired. In every phase a process
not yet restarted runs beside one already restarted, and every job crosses between them
(one runs the workflows, the other the activities; then the other way round), so each
payload one encrypts the other must decrypt. The one-step swap the docs used to describe
is there too: it fails at once, naming the key, and `offload stats` had said it would.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError

from offload.codec import key_id, new_key, parse_key
from offload.db import Pool
from offload.dev.stack import SmtpSink
from offload.jobs.email import enqueue_email
from offload.jobs.stats import key_stats, queue_stats
from offload.models import EmailJob
from offload.settings import Settings
from offload.temporal import connect
from tests.api import eventually
from tests.harness import on_the_email_queue, running_worker

JOBS_PER_CROSSING = 3
ACTIVITY_KINDS = ["email", "default", "reports"]


def keyed(settings: Settings, current: str, *decrypt_only: str) -> Settings:
    """Settings of a process holding `current` and the decrypt-only keys."""
    old = SecretStr(",".join(decrypt_only)) if decrypt_only else None
    return settings.model_copy(
        update={"encryption_key": SecretStr(current), "encryption_old_keys": old}
    )


def email(n: int) -> EmailJob:
    return EmailJob(
        to=f"rotation{n}@example.com",
        template="lead-confirmation",
        data={"name": f"Lead {n}", "property": f"{n} Key Street"},
        idempotency_key=f"rotation-{uuid.uuid4().hex}",
    )


async def crossing(pool: Pool, workflows: Settings, activities: Settings, first: int) -> list[str]:
    """Jobs started by both processes, their workflows on one, their activities on the other.

    Returns the recipients of the jobs, which all completed.
    """
    workflow_client, activity_client = await connect(workflows), await connect(activities)
    async with (
        running_worker(workflow_client, workflows, pool, ["workflows"]),
        running_worker(activity_client, activities, pool, ACTIVITY_KINDS),
    ):
        handles = []
        for n in range(first, first + JOBS_PER_CROSSING):
            client, own = (workflow_client, workflows) if n % 2 else (activity_client, activities)
            handles.append(await enqueue_email(client, own, email(n)))
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
    assert {r.status for r in results} == {"sent"}
    return [r.to for r in results]


async def test_a_rolling_rotation_by_the_documented_procedure_fails_no_job(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    old, new = new_key(), new_key()
    phases = [
        ("roll the new key out as decrypt-only", keyed(settings, old), keyed(settings, old, new)),
        ("make the new key current", keyed(settings, old, new), keyed(settings, new, old)),
        ("retire the old key", keyed(settings, new, old), keyed(settings, new)),
    ]
    sent: list[str] = []
    for phase, (name, before, after) in enumerate(phases):
        for workflows, activities in ((before, after), (after, before)):
            sent += await crossing(pool, workflows, activities, len(sent))
        if phase == 0:
            # Both kinds of process poll now: stats sees their keys and no gap between them.
            keys = key_stats(after, await queue_stats(await connect(after), after))
            assert keys is not None, name
            assert keys.gaps == [], name
            assert len(keys.workers) == 2, keys.workers

    assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 0
    delivered = sorted(m["To"] for m in smtp_sink.messages())
    assert delivered == sorted(sent)
    assert len(sent) == 3 * 2 * JOBS_PER_CROSSING


async def pending_activities(client: Client, workflow_id: str) -> list[str]:
    description = await client.get_workflow_handle(workflow_id).describe()
    return [a.activity_type.name for a in description.raw_description.pending_activities]


async def test_a_one_step_swap_fails_the_job_at_once_naming_the_key_and_loses_nothing(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink
) -> None:
    old, new = new_key(), new_key()
    new_id = key_id(parse_key(new))
    swapped, not_yet = keyed(settings, new, old), keyed(settings, old)
    swapped_client, old_client = await connect(swapped), await connect(not_yet)
    # The workflow worker holds the new key, so its local first attempt would decrypt the
    # job: with an SMTP rate limit it makes none, and the send goes to the lagging worker.
    queued = on_the_email_queue(swapped)
    async with running_worker(swapped_client, queued, pool, ["workflows"]):
        async with running_worker(old_client, not_yet, pool, ACTIVITY_KINDS):
            keys = key_stats(swapped, await queue_stats(swapped_client, swapped))
            assert keys is not None
            assert any(f"cannot decrypt key {new_id}" in gap for gap in keys.gaps), keys.gaps

            handle = await enqueue_email(swapped_client, swapped, email(0))

            # The send failed at its first attempt; recording the dead letter waits, retrying,
            # for a worker that can decrypt it.
            async def recording() -> bool:
                return "record_dead_letter" in await pending_activities(swapped_client, handle.id)

            await eventually(recording, 60)
        # The lagging process restarts with the keys: the entry is recorded, nothing lost.
        async with running_worker(swapped_client, swapped, pool, ACTIVITY_KINDS):
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), 60)

            async def recorded() -> asyncpg.Record | None:
                # The dead-letter workflow stores the entry after the job has failed.
                return await pool.fetchrow(
                    "SELECT error_type, error_message, attempts FROM dead_letters"
                    " WHERE workflow_id = $1",
                    handle.id,
                )

            row = await eventually(recorded, 60)
    assert row is not None
    assert row["error_type"] == "EncryptionKeyError"
    assert new_id in row["error_message"]
    # The first attempt was the last: no retry loop ran out first.
    assert row["attempts"] == 1
    assert smtp_sink.messages() == []
