"""The parts of `bench.peers` that decide whether the Celery row runs, and its worker's task."""

from __future__ import annotations

import asyncio
import math
import stat
from pathlib import Path
from typing import Any

import pytest

from bench.peers import celery_row, redis_server

OFFLOAD = ([30.0, 31.0, 32.0], 50.0)


def test_no_redis_server_on_the_path_skips_the_celery_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert redis_server() is None
    row = celery_row(None, OFFLOAD)
    assert (row.figure, row.note, row.met) == ("skipped", "no redis-server on the PATH", True)
    assert math.isnan(row.ratio)


def test_a_redis_server_on_the_path_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = tmp_path / "redis-server"
    server.write_text("#!/bin/sh\n")
    server.chmod(server.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert redis_server() == str(server)


def test_measured_celery_figures_make_a_peer_row() -> None:
    row = celery_row(([10.0, 15.0, 20.0], 40.0), OFFLOAD)
    assert row.figure.startswith("p50 15.0 ms")
    assert row.ratio == pytest.approx(31.0 / 15.0)


def test_a_worker_child_sends_every_task_on_one_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bench extra (`make bench`) brings Celery; the test suite alone does not need it.
    celery_peer = pytest.importorskip("bench.celery_peer")
    made: list[asyncio.AbstractEventLoop] = []
    new_event_loop = asyncio.new_event_loop

    def counted() -> asyncio.AbstractEventLoop:
        made.append(new_event_loop())
        return made[-1]

    async def deliver(self: Any, job: dict[str, Any]) -> str:
        return f"<{job['idempotency_key']}@bench>"

    monkeypatch.setattr(asyncio, "new_event_loop", counted)
    monkeypatch.setattr(celery_peer.Child, "deliver", deliver)
    monkeypatch.setattr(celery_peer, "_child", None)
    try:
        sent = [celery_peer.send_email({"idempotency_key": key}) for key in ("a", "b", "c")]
        assert sent == ["<a@bench>", "<b@bench>", "<c@bench>"]
        assert len(made) == 1
    finally:
        celery_peer.close_child()
    assert all(loop.is_closed() for loop in made)
