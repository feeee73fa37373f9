"""The app database: an asyncpg pool, numbered migrations, and named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from offload.settings import Settings

Pool = asyncpg.Pool

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_QUERY_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class DatabaseUnavailableError(ConnectionError):
    """PostgreSQL cannot be reached at the configured DSN."""


async def create_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """A connection pool to the configured database.

    Raises:
        DatabaseUnavailableError: the server refuses or does not answer.
    """
    try:
        return await asyncpg.create_pool(settings.dsn, min_size=min_size, max_size=max_size)
    except (OSError, asyncpg.PostgresError) as err:
        where = "DATABASE_URL" if settings.database_url else "the embedded PostgreSQL"
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL ({where}); is `make dev` running? ({err})"
        ) from err


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The numbered migrations shipped in `offload/db/migrations`, in order."""
    found = []
    for entry in resources.files("offload.db").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


async def migrate(pool: Pool) -> list[str]:
    """Apply the migrations not yet recorded in `schema_migrations`; return their names.

    Each runs once, in its own transaction, under an advisory lock so two processes
    migrating at the same moment do not both apply it.
    """
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('offload-migrate'))")
            done = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
            for migration in migrations():
                if migration.version in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                applied.append(migration.name)
    return applied


class Queries:
    """Named SQL from `offload/db/queries/*.sql`: each query follows a `-- name: x` line.

    SQL stays in `.sql` files; Python reaches it as `QUERIES.insert_email_log`.
    """

    def __init__(self) -> None:
        self._sql: dict[str, str] = {}
        for entry in resources.files("offload.db").joinpath("queries").iterdir():
            if not entry.name.endswith(".sql"):
                continue
            text = entry.read_text()
            parts = _QUERY_HEADER.split(text)
            for name, sql in zip(parts[1::2], parts[2::2], strict=True):
                if name in self._sql:
                    raise RuntimeError(f"query {name!r} is defined twice ({entry.name})")
                self._sql[name] = sql.strip()

    def __getattr__(self, name: str) -> str:
        try:
            return self._sql[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}") from None


QUERIES = Queries()
