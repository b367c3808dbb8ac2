"""Claiming under contention: every due run goes to exactly one claimer.

On PostgreSQL (PUSH_POOLS_TEST_DATABASE_URL) four processes, each with its own Store, drain
2,000 runs; on SQLite four threads share one database file (WAL) and drain 500.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from push_pools.models import DeploymentUpdate, WorkQueueUpdate
from push_pools.store import deployments as deployment_store
from push_pools.store import pools as pool_store
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import FlowRun, FlowRunState
from tests.dispatch_helpers import seed_managed_runs

pytestmark = pytest.mark.store

PG_URL = os.environ.get("PUSH_POOLS_TEST_DATABASE_URL")
WAITING = ["SCHEDULED", "LATE"]
CLAIMERS = 4
BATCH = 10


def seed_runs(
    store: Store, count: int, *, pool: str = "pool", concurrency_limit: int | None = None
) -> list[str]:
    """A process pool, one deployment in it, and `count` due Scheduled runs (one session)."""
    return seed_managed_runs(
        store, count, pool=pool, pool_type="process", concurrency_limit=concurrency_limit
    )


def waiting_in_pool(store: Store, pool: str = "pool") -> int:
    with store.session() as session:
        pool_id = pool_store.get_pool(session, pool).id
        return session.scalar(
            select(func.count())
            .select_from(FlowRun)
            .where(FlowRun.work_pool_id == pool_id, FlowRun.state_type.in_(WAITING))
        )


def claim_until_empty(store: Store, name: str, pool: str = "pool") -> list[str]:
    """What a worker does: claim batches until no run of the pool is waiting any more."""
    claimed: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with store.session() as session:
            pool_row = pool_store.get_pool(session, pool)
            result = run_store.claim_runs(session, pool_row, claimer=name, limit=BATCH)
            ids = [r.id for r in result.runs]
        claimed.extend(ids)  # only once the claim is committed
        if ids:
            assert len(ids) <= BATCH
            continue
        # Nothing for us: either all is claimed, or the rest is locked by other claimers.
        if waiting_in_pool(store, pool) == 0:
            return claimed
        time.sleep(0.005)
    raise AssertionError(f"{name} still finds waiting runs after 120 s")


def process_claimer(
    url: str, name: str, start: Any, results: Any
) -> None:  # runs in a spawned process
    store = Store(url)
    claimed: list[str] = []
    try:
        start.wait(120)
        claimed = claim_until_empty(store, name)
        results.put((name, claimed, None))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put((name, claimed, f"{type(exc).__name__}: {exc}"))
    finally:
        store.dispose()


def assert_each_run_claimed_once(
    store: Store, run_ids: list[str], claimed_by: dict[str, list[str]]
) -> None:
    everything = [run_id for ids in claimed_by.values() for run_id in ids]
    duplicates = [run_id for run_id, n in Counter(everything).items() if n > 1]
    assert duplicates == [], f"{len(duplicates)} runs were claimed by more than one claimer"
    assert sorted(everything) == sorted(run_ids)

    with store.session() as session:
        pending_rows = dict(
            session.execute(
                select(FlowRunState.flow_run_id, func.count())
                .where(FlowRunState.type == "PENDING")
                .group_by(FlowRunState.flow_run_id)
            ).all()
        )
        assert sum(pending_rows.values()) == len(run_ids)
        assert set(pending_rows) == set(run_ids)
        assert set(pending_rows.values()) == {1}, "some run moved to Pending twice"
        states = dict(
            session.execute(
                select(FlowRun.state_type, func.count()).group_by(FlowRun.state_type)
            ).all()
        )
        assert states == {"PENDING": len(run_ids)}, "runs left waiting or in another state"
        owner = {run_id: name for name, ids in claimed_by.items() for run_id in ids}
        for run_id, worker_name, details in session.execute(
            select(FlowRun.id, FlowRun.worker_name, FlowRunState.details)
            .join(FlowRunState, FlowRunState.flow_run_id == FlowRun.id)
            .where(FlowRunState.type == "PENDING")
        ):
            assert worker_name == owner[run_id]
            assert details == {"claimed_by": owner[run_id]}


@pytest.mark.skipif(not PG_URL, reason="set PUSH_POOLS_TEST_DATABASE_URL (scripts/postgres.sh)")
def test_four_processes_claim_2000_runs_each_exactly_once_on_postgres(database_url: str) -> None:
    assert database_url.startswith("postgresql")
    store = Store(database_url)
    try:
        store.migrate()
        run_ids = seed_runs(store, 2000)

        context = multiprocessing.get_context("spawn")
        start = context.Barrier(CLAIMERS + 1)
        results = context.Queue()
        processes = [
            context.Process(
                target=process_claimer, args=(database_url, f"claimer-{i}", start, results)
            )
            for i in range(CLAIMERS)
        ]
        for process in processes:
            process.start()
        try:
            start.wait(120)  # all connected and ready: claim at the same moment
            outcomes = [results.get(timeout=180) for _ in processes]
        finally:
            for process in processes:
                process.join(30)
                if process.is_alive():
                    process.kill()
        errors = [(name, error) for name, _, error in outcomes if error]
        assert errors == []
        claimed_by = {name: ids for name, ids, _ in outcomes}
        assert len([ids for ids in claimed_by.values() if ids]) >= 2, "no contention happened"
        assert_each_run_claimed_once(store, run_ids, claimed_by)
    finally:
        store.dispose()


def test_four_threads_claim_500_runs_each_exactly_once_on_sqlite(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    seeding = Store(url)
    seeding.migrate()
    run_ids = seed_runs(seeding, 500)
    with seeding.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

    stores = [Store(url) for _ in range(CLAIMERS)]
    start = threading.Barrier(CLAIMERS)
    claimed_by: dict[str, list[str]] = {}
    errors: list[str] = []

    def claimer(store: Store, name: str) -> None:
        try:
            start.wait(30)
            claimed_by[name] = claim_until_empty(store, name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=claimer, args=(s, f"claimer-{i}")) for i, s in enumerate(stores)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert not any(t.is_alive() for t in threads)
        assert_each_run_claimed_once(seeding, run_ids, claimed_by)
    finally:
        for store in stores:
            store.dispose()
        seeding.dispose()


# --- concurrency limits under contention -------------------------------------------------------


@pytest.mark.parametrize("limit_on", ["pool", "queue"])
def test_concurrent_claimers_respect_the_concurrency_limit(
    database_url: str, monkeypatch: pytest.MonkeyPatch, limit_on: str
) -> None:
    store = Store(database_url)
    store.migrate()
    # Plenty of due runs, so that no claimer comes away empty-handed because of row locks.
    seed_runs(store, 400, concurrency_limit=25 if limit_on == "pool" else None)
    if limit_on == "queue":
        with store.session() as session:
            pool = pool_store.get_pool(session, "pool")
            pool_store.update_queue(session, pool, "default", WorkQueueUpdate(concurrency_limit=25))

    # Four workers poll at the same instant: each has counted the active runs before any of
    # them claims (SQLite serialises claims, so there the barrier times out and nothing overlaps).
    barrier = threading.Barrier(CLAIMERS, timeout=2)
    real_count_active = run_store.count_active

    def count_active_together(*args: Any) -> int:
        active = real_count_active(*args)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return active

    monkeypatch.setattr(run_store, "count_active", count_active_together)
    claimed: dict[str, int] = {}
    errors: list[str] = []

    def claim_once(name: str) -> None:
        try:
            with store.session() as session:
                pool = pool_store.get_pool(session, "pool")
                runs = run_store.claim_runs(session, pool, claimer=name, limit=BATCH).runs
                claimed[name] = len(runs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=claim_once, args=(f"w{i}",)) for i in range(CLAIMERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        monkeypatch.setattr(run_store, "count_active", real_count_active)
        assert errors == []
        with store.session() as session:
            active = session.scalar(
                select(func.count()).select_from(FlowRun).where(FlowRun.state_type == "PENDING")
            )
        assert sum(claimed.values()) == active
        assert active == 25, f"{active} runs active with a concurrency limit of 25: {claimed}"
    finally:
        store.dispose()


def test_a_worker_polling_during_another_claim_still_gets_the_runs_left_over(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(database_url)
    store.migrate()
    seed_runs(store, 30)  # a burst of 30 due runs; two workers with 10 free slots each
    real_record_state = run_store.record_state
    second: list[str] = []
    second_done = threading.Event()

    def worker_b_polls() -> None:
        with store.session() as session:
            pool = pool_store.get_pool(session, "pool")
            runs = run_store.claim_runs(session, pool, claimer="worker-b", limit=BATCH).runs
            second.extend(r.id for r in runs)
        second_done.set()

    b_started = threading.Event()

    def record_state(session: Any, run: Any, state: Any, *args: Any, **kwargs: Any) -> None:
        if run.worker_name == "worker-a" and not b_started.is_set():
            b_started.set()
            # worker-a has picked its candidates and is claiming them; worker-b polls now.
            # (SQLite serialises the claims, so there this wait times out.)
            threading.Thread(target=worker_b_polls, daemon=True).start()
            second_done.wait(2)
        real_record_state(session, run, state, *args, **kwargs)

    monkeypatch.setattr(run_store, "record_state", record_state)
    try:
        with store.session() as session:
            pool = pool_store.get_pool(session, "pool")
            first = [
                r.id
                for r in run_store.claim_runs(session, pool, claimer="worker-a", limit=BATCH).runs
            ]
        assert second_done.wait(30)
        monkeypatch.setattr(run_store, "record_state", real_record_state)
        assert len(first) == BATCH
        assert len(second) == BATCH, f"worker-b got {len(second)} runs while 20 were due"
        assert not set(first) & set(second)
    finally:
        store.dispose()


def test_a_deployments_concurrency_limit_caps_what_is_claimed(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    seed_runs(store, 5)
    with store.session() as session:
        deployment = deployment_store.get_deployment_by_name(session, "etl", "bulk")
        deployment_store.update_deployment(
            session, deployment.id, DeploymentUpdate(concurrency_limit=2)
        )

    def claim(name: str) -> int:
        with store.session() as session:
            pool = pool_store.get_pool(session, "pool")
            return len(run_store.claim_runs(session, pool, claimer=name, limit=BATCH).runs)

    # Room for ten in the batch, two in the deployment: the other runs wait.
    assert claim("w1") == 2
    assert claim("w2") == 0
    assert waiting_in_pool(store) == 3
