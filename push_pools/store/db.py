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
from push_pools.store.write_queue import WriteQueue

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision (tests/test_store.py checks it against alembic's head). A
# store already there, or a new empty one, is opened without importing alembic: about 10 MiB
# of the server's memory.
HEAD_REVISION = "0011"


# The API server runs sync handlers on this many threads (the app sets anyio's limiter to it);
# each holds at most one connection, and only while it runs.
API_THREADS = 40
# Connections used outside those threads: the dispatcher and its submit threads.
BACKGROUND_CONNECTIONS = 10
POOL_CONNECTIONS = API_THREADS + BACKGROUND_CONNECTIONS
# A request that waits longer than this for a connection, or (SQLite) for its turn to write,
# answers 503 with Retry-After (api/deps.py) instead of holding its client for 30 s.
BUSY_TIMEOUT_SECONDS = 5.0
# The dispatcher and scheduler have no client waiting: they wait longer for the write lock
# rather than lose a tick.
BACKGROUND_LOCK_TIMEOUT_SECONDS = 30.0
# Execution options of a session's connections, read by _sqlite_begin.
_READ_ONLY = "push_pools_read_only"
_LOCK_TIMEOUT = "push_pools_lock_timeout_ms"
# Where a request session finds the store's WriteQueue (None: no queue, PostgreSQL).
WRITE_QUEUE = "write_queue"


class Store:
    """One database: its engine and session factories. Passed to whoever needs the store."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.database_url()
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        api_engine = self.engine.execution_options(
            **{_LOCK_TIMEOUT: int(BUSY_TIMEOUT_SECONDS * 1000)}
        )
        # On SQLite the API's writers queue in this process first (see write_queue.py).
        self.write_queue = WriteQueue() if self.is_sqlite else None
        # For API requests (the API ends them, see api/deps.py): their client would rather get
        # a 503 and retry than wait long for the SQLite write lock.
        self.request_sessions = sessionmaker(
            api_engine, expire_on_commit=False, info={WRITE_QUEUE: self.write_queue}
        )
        self.read_sessions = sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        event.listen(self.read_sessions, "before_flush", _refuse_writes)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on an exception.

        On SQLite it takes the write lock at BEGIN, so writers queue instead of failing when a
        reader upgrades; it waits up to BACKGROUND_LOCK_TIMEOUT_SECONDS for it."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction. On SQLite it takes no write lock (WAL: it reads a snapshot
        while writers go on), so any number of readers never wait behind a writer."""
        with self.read_sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        upgrade_to_head(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def _refuse_writes(session: Session, _context: Any, _instances: Any) -> None:
    # A read session holds no write lock; on SQLite a write there could fail on lock upgrade.
    raise RuntimeError("a read-only store session was asked to write; use Store.session()")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        if not in_memory:
            _private_file(make_url(url).database or "")
        # An in-memory database lives in one connection: every thread must share it.
        pool_args: dict[str, Any] = (
            {"poolclass": StaticPool}
            if in_memory
            else {
                # Connections to a file are cheap: keep them all rather than reopen under load.
                "pool_size": POOL_CONNECTIONS,
                "max_overflow": 0,
                "pool_timeout": BUSY_TIMEOUT_SECONDS,
            }
        )
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BACKGROUND_LOCK_TIMEOUT_SECONDS},
            **pool_args,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        # A few connections stay open; the rest are opened for a burst and closed after it.
        pool_size=10,
        max_overflow=POOL_CONNECTIONS - 10,
        pool_timeout=BUSY_TIMEOUT_SECONDS,
        pool_pre_ping=True,
    )


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


def _sqlite_begin(connection: Any) -> None:
    options = connection.get_execution_options()
    if options.get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    # Take the write lock at BEGIN so two writers (claimers) queue instead of failing with
    # "database is locked" when one upgrades a read lock. pysqlite's own BEGIN would defer it.
    timeout_ms = int(options.get(_LOCK_TIMEOUT, BACKGROUND_LOCK_TIMEOUT_SECONDS * 1000))
    if connection.info.get(_LOCK_TIMEOUT) != timeout_ms:  # the connection's last user's wait
        connection.exec_driver_sql(f"PRAGMA busy_timeout={timeout_ms}")
        connection.info[_LOCK_TIMEOUT] = timeout_ms
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    timeout_ms = int(BACKGROUND_LOCK_TIMEOUT_SECONDS * 1000)
    cursor.execute(f"PRAGMA busy_timeout={timeout_ms}")
    cursor.close()
    record.info[_LOCK_TIMEOUT] = timeout_ms


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
