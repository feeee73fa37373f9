"""The dev server as Offload starts it (`SERVER_FLAGS`, SQLite WAL): its jobs survive a kill -9."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from offload.db import Pool
from offload.dev.stack import SmtpSink, TemporalDevServer
from offload.jobs.email import enqueue_email
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from tests.harness import running_worker
from tests.integration.test_dead_letters import email_to

SENT_BEFORE = 4
QUEUED_BEFORE = 4


async def test_a_killed_dev_server_keeps_every_job_it_acknowledged_in_its_write_ahead_log(
    settings: Settings, pool: Pool, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    db_file = tmp_path / "temporal.sqlite"
    server = TemporalDevServer(port=free_port(), ui_port=None, db_file=db_file)
    await server.start()
    own = settings.model_copy(update={"temporal_address": server.address})
    try:
        client = await connect(own)
        async with running_worker(client, own, pool):
            sent = [
                await enqueue_email(client, own, email_to(own, f"sent{n}@example.com"))
                for n in range(SENT_BEFORE)
            ]
            for handle in sent:
                assert (await handle.result()).status == "sent"
        # No worker now: these wait in the queue, acknowledged by the server, when it dies.
        queued = [
            await enqueue_email(client, own, email_to(own, f"queued{n}@example.com"))
            for n in range(QUEUED_BEFORE)
        ]
        # With synchronous=normal a commit is in the write-ahead log, not yet in the file.
        wal = db_file.with_name(db_file.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        await server.stop()

        await server.start()
        client = await connect(own)
        async with running_worker(client, own, pool):
            for handle in [*sent, *queued]:
                result = await client.get_workflow_handle(handle.id).result()
                assert result["status"] == "sent", (handle.id, result)
    finally:
        await server.stop()
    recipients = sorted(str(m["To"]) for m in smtp_sink.messages())
    assert recipients == sorted(
        [f"sent{n}@example.com" for n in range(SENT_BEFORE)]
        + [f"queued{n}@example.com" for n in range(QUEUED_BEFORE)]
    )
