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
        return await asyncpg.create_pool(
            settings.dsn, min_size=min_size, max_size=max_size, reset=_keep_session
        )
    except (OSError, asyncpg.PostgresError) as err:
        where = "DATABASE_URL" if settings.database_url else "the embedded PostgreSQL"
        raise DatabaseUnavailableError(
            f"cannot connect to PostgreSQL ({where}); is `make dev` running? ({err})"
        ) from err


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool as it is.

    asyncpg's default release sends a reset query (`SELECT pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL`): one more round trip after every query made through the
    pool, a third of the work of a one-query request. Offload keeps no session state on a
    pooled connection: no `SET` (only `SET LOCAL`), no `LISTEN`, no cursor outside a
    transaction, and the one session lock (`migrate`) is released by its holder. What
    asyncpg does before calling this stays: a transaction left open is rolled back.
    """


# A migration whose first line is this marker runs outside a transaction, one statement at a
# time: `CREATE INDEX CONCURRENTLY` (which does not block writes) cannot run inside one.
NO_TRANSACTION = "-- offload: no-transaction"


@dataclass(frozen=True)
class Migration:
    """One numbered `.sql` file of `offload/db/migrations`."""

    version: int
    name: str
    sql: str

    @property
    def transactional(self) -> bool:
        """False for a migration marked `-- offload: no-transaction` on its first line."""
        return not self.sql.lstrip().startswith(NO_TRANSACTION)

    def statements(self) -> list[str]:
        """The statements of the file: each ends with `;` at the end of a line.

        A `;` inside a `$$`-quoted body (a `DO $$ ... $$;` block) does not end one.
        """
        found: list[str] = []
        current: list[str] = []
        quoted = False
        for line in self.sql.splitlines():
            current.append(line)
            quoted ^= line.count("$$") % 2 == 1
            if not quoted and line.rstrip().endswith(";"):
                statement = "\n".join(current).strip()
                if _has_code(statement):
                    found.append(statement)
                current = []
        if _has_code("\n".join(current)):
            raise RuntimeError(f"{self.name}: the last statement does not end with ';'")
        return found


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


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

    Each runs once, in its own transaction together with its row in `schema_migrations`, so a
    failing migration leaves the ones before it applied. A `-- offload: no-transaction`
    migration runs its statements one by one and is recorded after the last; its statements
    must be safe to run again (`IF NOT EXISTS`), since a crash before the record re-runs
    them. A session advisory lock keeps two processes migrating at the same moment from both
    applying one.
    """
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute("SELECT pg_advisory_lock(hashtext('offload-migrate'))")
        try:
            done = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
            for migration in migrations():
                if migration.version in done:
                    continue
                if migration.transactional:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await _record(conn, migration)
                else:
                    for statement in migration.statements():
                        await conn.execute(statement)
                    await _record(conn, migration)
                applied.append(migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext('offload-migrate'))")
    return applied


async def _record(
    conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], migration: Migration
) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
        migration.version,
        migration.name,
    )


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
