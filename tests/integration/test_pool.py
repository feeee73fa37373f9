"""The app's connection pool against a real PostgreSQL: a query costs one round trip, and
what a connection held is gone when it goes back to the pool."""

from __future__ import annotations

import asyncpg

from offload.db import create_pool, migrate
from offload.settings import Settings


async def test_a_connection_goes_back_to_the_pool_without_a_query(settings: Settings) -> None:
    # asyncpg's default release runs a reset query (`RESET ALL`, `UNLISTEN *`, ...): one
    # more round trip for every query made through the pool. Offload keeps no session state.
    pool = await create_pool(settings, min_size=1, max_size=1)
    sent: list[str] = []
    try:
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
            await conn.fetchval("SELECT 1")
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 2")
    finally:
        await pool.close()
    assert sent == ["SELECT 1", "SELECT 2"]


async def test_a_transaction_left_open_and_the_migration_lock_do_not_outlive_a_release(
    settings: Settings,
) -> None:
    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        await migrate(pool)
        async with pool.acquire() as conn:
            # Not managed by `async with`: a caller that forgot to end it.
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (id int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
        other = await asyncpg.connect(settings.dsn)
        try:
            assert await other.fetchval("SELECT pg_try_advisory_lock(hashtext('offload-migrate'))")
        finally:
            await other.close()
    finally:
        await pool.close()
