"""PostgreSQL access: one connection pool per process and plain, numbered SQL migrations."""
from __future__ import annotations

import logging
import threading
from importlib import resources

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)
_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()
# Any constant works; it serialises migrations when several processes start at once.
_MIGRATION_LOCK = 0x6D696E64


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)
    conn.commit()  # the vector type lookup opened a transaction


def pool(url: str, size: int = 4) -> ConnectionPool:
    """The process's pool for `url`, opened on first use (not at import: cold starts stay short)."""
    with _lock:
        if url not in _pools:
            # check: a connection the server dropped (a restart, a failover) is replaced on checkout
            # rather than handed out broken; timeout: a caller waits seconds, not half a minute, for
            # a database that is down, so the API can answer 503 while it is.
            _pools[url] = ConnectionPool(
                url, min_size=1, max_size=size, open=True, configure=_configure, check=ConnectionPool.check_connection,
                kwargs={"row_factory": dict_row, "autocommit": False}, name="mindspace", timeout=5,
            )
        return _pools[url]


def close_pools() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()


def migrate(url: str) -> list[str]:
    """Apply each migration in shared/migrations once, in order, and record it. Returns the new ones."""
    files = sorted(
        (f for f in resources.files("shared.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for f in files:
                version = f.name.removesuffix(".sql")
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(f.read_text())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("applied migration %s", version)
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


if __name__ == "__main__":  # the migration Job: python -m shared.db
    from shared.config import settings

    logging.basicConfig(level="INFO", format="%(levelname)s %(message)s")
    url = settings().database_url
    if not url:
        raise SystemExit("DATABASE_URL is not set")
    print(", ".join(migrate(url)) or "the database is up to date")
