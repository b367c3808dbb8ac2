"""The store itself: engines and connections."""

from __future__ import annotations


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
