"""The migration runner against a real PostgreSQL: one transaction each, and index builds
that do not block writes (`-- offload: no-transaction` migrations)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

import offload.db
from offload.db import Migration, migrate, migrations
from offload.dev.stack import EmbeddedPostgres
from tests.harness import create_database

INDEX = "leads_agent_created_at_id_report"


@pytest.fixture
async def empty_pool(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a new database that no migration has touched."""
    dsn = await create_database(postgres, f"migrations_{uuid.uuid4().hex[:12]}")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def applied_versions(pool: asyncpg.Pool) -> list[int]:
    rows = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [row["version"] for row in rows]


async def index_is_valid(pool: asyncpg.Pool) -> bool | None:
    valid: bool | None = await pool.fetchval(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = $1",
        INDEX,
    )
    return valid


async def test_a_failing_migration_leaves_the_ones_before_it_applied(
    empty_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = [
        Migration(1, "0001_first.sql", "CREATE TABLE first_table (id int);"),
        Migration(2, "0002_broken.sql", "CREATE TABLE second_table (id int);\nSELECT nope;"),
    ]
    monkeypatch.setattr(offload.db, "migrations", lambda: shipped)
    with pytest.raises(asyncpg.UndefinedColumnError):
        await migrate(empty_pool)
    assert await applied_versions(empty_pool) == [1]
    assert await empty_pool.fetchval("SELECT to_regclass('first_table') IS NOT NULL")
    # The failing one changed nothing: its first statement went with it.
    assert await empty_pool.fetchval("SELECT to_regclass('second_table') IS NULL")


async def test_a_new_database_gets_the_report_index_built_concurrently(
    empty_pool: asyncpg.Pool,
) -> None:
    names = await migrate(empty_pool)
    assert names == [m.name for m in migrations()]
    assert await index_is_valid(empty_pool) is True
    assert await migrate(empty_pool) == []


async def test_a_database_migrated_before_0030_keeps_its_index_and_runs_only_what_is_new(
    empty_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database of an earlier release: 0004 built the index inside its transaction.
    earlier = [m for m in migrations() if m.version < 30]
    old_0004_index = (
        f"CREATE INDEX {INDEX} ON leads (agent_id, created_at, id)"
        " INCLUDE (property, source, score);"
    )
    earlier = [
        Migration(m.version, m.name, m.sql + "\n" + old_0004_index) if m.version == 4 else m
        for m in earlier
    ]
    monkeypatch.setattr(offload.db, "migrations", lambda: earlier)
    await migrate(empty_pool)
    monkeypatch.undo()

    names = await migrate(empty_pool)
    assert names == [m.name for m in migrations() if m.version >= 30]
    assert names[0] == "0030_reports_index_concurrently.sql"
    assert await index_is_valid(empty_pool) is True


async def test_an_interrupted_concurrent_build_is_built_again(empty_pool: asyncpg.Pool) -> None:
    await migrate(empty_pool)
    # What a build killed half-way leaves behind: the index, marked invalid, 0030 unrecorded.
    await empty_pool.execute(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = $1::regclass", INDEX
    )
    await empty_pool.execute("DELETE FROM schema_migrations WHERE version = 30")
    assert await index_is_valid(empty_pool) is False
    await migrate(empty_pool)
    assert await index_is_valid(empty_pool) is True


def test_statements_of_a_no_transaction_migration_keep_dollar_quoted_bodies_whole() -> None:
    [concurrent] = [m for m in migrations() if not m.transactional]
    statements = concurrent.statements()
    assert len(statements) == 2
    assert "DO $$" in statements[0]
    assert statements[0].rstrip().endswith("$$;")
    assert "CREATE INDEX CONCURRENTLY" in statements[1]
