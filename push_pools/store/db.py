"""Opening the store: engine, SQLite pragmas, migrations, sessions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from push_pools import settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision (tests/test_store.py checks it against alembic's head). A
# store already there, or a new empty one, is opened without importing alembic: about 10 MiB
# of the server's memory.
HEAD_REVISION = "0006"


class Store:
    """One database: its engine and a session factory. Passed to whoever needs the store."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.database_url()
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on an exception."""
        with self.sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        upgrade_to_head(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        if not in_memory:
            _private_file(make_url(url).database or "")
        # An in-memory database lives in one connection: every thread must share it.
        pool_args: dict[str, Any] = (
            {"poolclass": StaticPool} if in_memory else {"pool_size": 8, "max_overflow": 8}
        )
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool_args
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own BEGIN handling defers locks; take the write lock at BEGIN so two
        # claimers serialise instead of failing with "database is locked" on upgrade.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _private_file(path: str) -> None:
    """Create the SQLite file readable by its owner only (0600); SQLite gives its -wal and
    -shm files the same mode. An existing file of ours is made private too."""
    if not path or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        if os.stat(path).st_uid == os.getuid():
            os.chmod(path, 0o600)
    except OSError:
        pass  # SQLite reports an unusable path itself, in its own words


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see the "begin" listener).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def upgrade_to_head(engine: Engine) -> None:
    """Apply every alembic migration not yet applied to this database."""
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is None and create_schema_if_empty(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    """The revision alembic recorded in this database; None for a new (or foreign) one."""
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def create_schema_if_empty(engine: Engine) -> bool:
    """A database with no tables gets today's schema at once, stamped with HEAD_REVISION (what
    the migrations would build: tests/test_store.py compares them). False if it has tables."""
    from sqlalchemy import inspect, text

    from push_pools.store.tables import Base

    with engine.begin() as connection:
        if inspect(connection).get_table_names():
            return False
        Base.metadata.create_all(connection)
        connection.execute(
            text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        )
        connection.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
        )
    return True
