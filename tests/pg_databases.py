"""PostgreSQL databases for the tests, one per pytest-xdist worker (and purpose).

Tests reset their database by dropping its schema, so two workers sharing one database would
wipe each other's rows mid-test. Each worker therefore gets its own database on the one server
named by PUSH_POOLS_TEST_DATABASE_URL; without xdist, tests use that URL's database as is.
"""

from __future__ import annotations

import functools
import os

SERVER_ENV = "PUSH_POOLS_TEST_DATABASE_URL"


def server_url() -> str | None:
    """The throwaway PostgreSQL server the tests may use, if one is configured."""
    return os.environ.get(SERVER_ENV) or None


def reset_postgres(url: str) -> None:
    """Leave the database at `url` empty, as a fresh store would find it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@functools.cache
def database_for(base_url: str, purpose: str = "") -> str:
    """The URL of this worker's database for `purpose`, created on first use.

    The plain main database serves when there is neither a worker nor a purpose: that keeps a
    single-process run exactly as it was before workers had databases of their own.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker and not purpose:
        return base_url
    # Lower-case letters, digits and underscores only: the name is spliced into CREATE DATABASE.
    suffix = "_".join(part for part in (worker, purpose) if part)
    name = "push_pools_test_" + "".join(c if c.isalnum() else "_" for c in suffix.lower())
    base = make_url(base_url)
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)
