"""The store itself: engines and connections."""

from __future__ import annotations

import pytest


def test_an_in_memory_store_works_across_threads() -> None:
    import threading

    from push_pools.store.db import Store
    from push_pools.store.tables import WorkPool

    store = Store("sqlite://")
    store.migrate()
    with store.session() as session:
        session.add(WorkPool(name="mem", type="process", base_job_template={}))
    counts: list[int] = []

    def count() -> None:
        with store.session() as session:
            counts.append(session.query(WorkPool).count())

    thread = threading.Thread(target=count)
    thread.start()
    thread.join()
    assert counts == [1]


def test_head_revision_is_alembics_newest_migration() -> None:
    """Bump HEAD_REVISION with every new migration, or stores would never be upgraded to it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from push_pools.store.db import HEAD_REVISION, MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_a_new_store_and_a_current_one_open_without_alembic(tmp_path) -> None:
    import subprocess
    import sys

    from push_pools.store.db import HEAD_REVISION

    url = f"sqlite:///{tmp_path / 'store.db'}"
    program = (
        "import sys\n"
        "from push_pools.store.db import Store, current_revision\n"
        f"store = Store({url!r})\n"
        "store.migrate()\n"
        "print(current_revision(store.engine), 'alembic' in sys.modules)\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert [r.stdout.split() for r in runs] == [[HEAD_REVISION, "False"]] * 2


@pytest.mark.store
def test_the_migrations_build_exactly_the_schema_a_new_store_gets(database_url: str) -> None:
    """New stores skip the migrations (create_schema_if_empty); upgraded ones run them: both
    must end with the same tables, columns, types, indexes and constraints."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext

    from push_pools.store.db import HEAD_REVISION, MIGRATIONS_DIR, current_revision, make_engine
    from push_pools.store.tables import Base

    engine = make_engine(database_url)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        assert current_revision(engine) == HEAD_REVISION
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_a_read_session_reads_beside_a_writer_and_refuses_to_write(tmp_path) -> None:
    from push_pools.store.db import Store
    from push_pools.store.tables import WorkPool

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    with store.session() as session:
        session.add(WorkPool(name="pool", type="process", base_job_template={}))
    with store.session() as writer:  # holds SQLite's write lock for the whole block
        writer.add(WorkPool(name="other", type="process", base_job_template={}))
        writer.flush()
        with store.read_session() as reader:
            assert [p.name for p in reader.query(WorkPool)] == ["pool"]
    with pytest.raises(RuntimeError, match="read-only store session was asked to write"):
        with store.read_session() as reader:
            reader.add(WorkPool(name="third", type="process", base_job_template={}))
    with store.read_session() as reader:
        assert sorted(p.name for p in reader.query(WorkPool)) == ["other", "pool"]
    store.dispose()
