"""Managed runs belong to their host (issue 10): servers sharing a store neither watch nor take
over another host's managed runs, and the runs of a host that stopped heartbeating are Crashed
once.

Store-marked: on PostgreSQL when PUSH_POOLS_TEST_DATABASE_URL is set, else on SQLite files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from push_pools.client import Client
from push_pools.dispatch import Dispatcher
from push_pools.embedded import free_port
from push_pools.executors.base import InfrastructureState
from push_pools.settings import HOST_ID_FILE
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import FlowRun, FlowRunState
from tests.conftest import deploy, wait_for_state
from tests.dispatch_helpers import (
    NOWHERE,
    FakeExecutor,
    ServerProcess,
    kill_sandboxes,
    seed_managed_runs,
    server_env,
)

pytestmark = pytest.mark.store

TIMEOUT = 10.0  # seconds of the dispatchers' injected clock without a heartbeat


class OnHostExecutor(FakeExecutor):
    """A FakeExecutor whose infrastructure, like a managed sandbox, is on its host's disk."""

    runs_on_host = True


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def clock() -> list[float]:
    """The monotonic clock of every dispatcher in a test, moved by the test alone."""
    return [1000.0]


@pytest.fixture
def on_host(store: Store, clock: list[float]) -> Iterator[Callable[..., Dispatcher]]:
    """Dispatchers on the host named by the test, each with its own executor."""
    made: list[Dispatcher] = []

    def make(host: str, executor: Any, **kwargs: Any) -> Dispatcher:
        kwargs.setdefault("lease_seconds", 0.0)  # every claim without a submission is stale
        dispatcher = Dispatcher(
            store,
            api_url=NOWHERE,
            name=kwargs.pop("name", f"dispatcher-on-{host}"),
            executor_factory=lambda _pool_type: executor,
            monotonic=lambda: clock[0],
            host_id=host,
            host_timeout_seconds=TIMEOUT,
            **kwargs,
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.stop()


def runs_by_id(store: Store) -> dict[str, FlowRun]:
    with store.session() as session:
        return {run.id: run for run in session.scalars(select(FlowRun))}


def crashed_states(store: Store) -> list[tuple[str, str | None]]:
    with store.session() as session:
        return list(
            session.execute(
                select(FlowRunState.flow_run_id, FlowRunState.message).where(
                    FlowRunState.type == "CRASHED"
                )
            ).tuples()
        )


def claim_without_submitting(store: Store, claimer: str, host: str) -> str:
    """A claim left by a server that died between claiming and submitting."""
    from push_pools.store import pools as pool_store

    with store.session() as session:
        pool = pool_store.get_pool(session, "managed")
        [run] = run_store.claim_runs(session, pool, claimer=claimer, limit=1).runs
        run.host_id = host
        return run.id


def test_servers_leave_another_hosts_managed_runs_alone_until_it_stops_heartbeating(
    store: Store, on_host: Callable[..., Dispatcher], clock: list[float]
) -> None:
    seed_managed_runs(store, 3)
    host_a = on_host("host-a", OnHostExecutor(), batch_size=2)
    # On host B the sandboxes of host A are nowhere to be found.
    executor_b = OnHostExecutor(InfrastructureState.MISSING)
    host_b = on_host("host-b", executor_b)
    host_c = on_host("host-c", OnHostExecutor(InfrastructureState.MISSING))
    for dispatcher in (host_a, host_b, host_c):
        dispatcher.hosts.tick()

    assert host_a.dispatch_once() == 2
    stale = claim_without_submitting(store, "a-server-that-died", "host-a")
    runs = runs_by_id(store)
    assert {run.host_id for run in runs.values()} == {"host-a"}
    assert sum(run.infrastructure_id is not None for run in runs.values()) == 2

    # Host B sees them all, including a claim past its lease, and touches none.
    clock[0] += 1
    assert host_b.dispatch_once() == 0
    host_b.watch_once()
    assert executor_b.submissions == [] and executor_b.status_calls == []
    assert crashed_states(store) == []
    assert runs_by_id(store)[stale].state_type == "PENDING"

    # Host A keeps beating: long past the timeout, its runs stay as they are.
    for _ in range(6):
        clock[0] += TIMEOUT / 2
        host_a.hosts.tick()
        assert host_b.hosts.tick() == [] and host_c.hosts.tick() == []
    assert crashed_states(store) == []

    # Host A stops beating: one timeout later its unfinished runs are Crashed, each once.
    clock[0] += TIMEOUT - 0.5
    assert host_b.hosts.tick() == []
    clock[0] += 0.5
    crashed = host_b.hosts.tick() + host_c.hosts.tick() + host_b.hosts.tick()
    assert sorted(crashed) == sorted(runs)
    messages = crashed_states(store)
    assert sorted(run_id for run_id, _ in messages) == sorted(runs)
    for _, message in messages:
        assert message is not None and message.startswith(
            "its host host-a stopped heartbeating (last heartbeat at "
        ), message
    assert {run.state_type for run in runs_by_id(store).values()} == {"CRASHED"}

    # Host A's server comes back: it cleans up what its runs left on its disk.
    executor_back = OnHostExecutor(InfrastructureState.EXITED)
    back = on_host("host-a", executor_back, name="dispatcher-on-host-a-restarted")
    back.watch_once()
    assert sorted(executor_back.cleanups) == sorted(
        run.infrastructure_id for run in runs.values() if run.infrastructure_id
    )


def test_a_stale_managed_claim_is_resubmitted_only_by_its_own_host(
    store: Store, on_host: Callable[..., Dispatcher]
) -> None:
    [run_id] = seed_managed_runs(store, 1)
    claim_without_submitting(store, "a-server-that-died", "host-a")
    other_host = OnHostExecutor()
    assert on_host("host-b", other_host).dispatch_once() == 0
    assert other_host.submissions == []

    # The same host, restarted, finds the claim it left and submits it (adopting by name
    # whatever its earlier submit may have started on its disk).
    same_host = OnHostExecutor()
    assert on_host("host-a", same_host, name="restarted").dispatch_once() == 1
    assert same_host.submitted_names() == [f"pp-{run_id}-1"]
    run = runs_by_id(store)[run_id]
    assert (run.host_id, run.worker_name, run.state_name) == ("host-a", "restarted", "Submitted")


def test_cloud_runs_stay_anyones_to_watch(
    store: Store, on_host: Callable[..., Dispatcher], clock: list[float]
) -> None:
    """A run whose infrastructure is not on a host's disk (ECS, Cloud Run) carries no host:
    any server watches it, and a dead host's heartbeat crashes none of them."""
    [run_id] = seed_managed_runs(store, 1)
    host_a = on_host("host-a", FakeExecutor())
    host_a.hosts.tick()
    assert host_a.dispatch_once() == 1
    assert runs_by_id(store)[run_id].host_id is None

    executor_b = FakeExecutor(InfrastructureState.MISSING)
    host_b = on_host("host-b", executor_b)
    host_b.hosts.tick()
    clock[0] += TIMEOUT
    assert host_b.hosts.tick() == []
    host_b.watch_once()
    assert [ids for _, ids in executor_b.status_calls] == [[f"pp-{run_id}-1"]]
    run = runs_by_id(store)[run_id]
    assert run.state_type == "CRASHED"
    assert "infrastructure disappeared" in (run.state_message or "")


# --- two real servers with different homes, standing for two hosts ---------------------------

# Runs until the test writes the file GO.
WAITING_FLOW = (
    "import pathlib\n"
    "import time\n\n"
    "from push_pools import flow\n\n\n"
    "@flow\n"
    "def wait_for_go(i: int = 0) -> int:\n"
    "    while not pathlib.Path(GO).exists():\n"
    "        time.sleep(0.05)\n"
    "    return i\n"
)


@pytest.fixture
def server_processes(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()
    for home in ("home-a", "home-b"):
        kill_sandboxes(tmp_path / home / "managed" / "runs")


def start_runs(api_url: str, deployment_id: str, indexes: range) -> list[str]:
    with Client(api_url) as client:
        run_ids = [
            client.create_run(deployment_id, {"parameters": {"i": i}})["id"] for i in indexes
        ]
        for run_id in run_ids:
            run = wait_for_state(client, run_id, {"RUNNING", "COMPLETED", "CRASHED"}, 90)
            assert run["state"] == "RUNNING", run
    return run_ids


def test_two_servers_on_one_store_run_managed_runs_without_crashing_each_others(
    database_url: str, tmp_path: Path, readable_dir: Path, server_processes: list[ServerProcess]
) -> None:
    go = readable_dir / "go"
    code = readable_dir / "waiting"
    code.mkdir()
    (code / "flows.py").write_text(WAITING_FLOW.replace("GO", repr(str(go))))
    homes = {name: tmp_path / f"home-{name}" for name in ("a", "b")}
    ports = {name: free_port() for name in homes}

    def server(name: str) -> ServerProcess:
        env = server_env(homes[name], ports[name], database_url, lease_seconds=5)
        process = ServerProcess(ports[name], env, tmp_path / f"server-{name}.log")
        server_processes.append(process)
        return process.start()

    a = server("a")
    with Client(a.api_url) as client:
        client.create_work_pool({"name": "managed", "type": "managed"})
        deployment = deploy(client, code, "wait_for_go", pool="managed")
    # Host A alone: its runs are running, then its server is killed (the sandboxes live on).
    on_a = start_runs(a.api_url, deployment["id"], range(0, 2))
    a.kill()
    # Host B alone takes the next runs, while host A's are still in flight.
    b = server("b")
    on_b = start_runs(b.api_url, deployment["id"], range(2, 4))
    # Host A comes back: both servers now watch the store, each seeing the other's runs, whose
    # sandboxes are not on its own disk. Give their watch loops a moment to (wrongly) act.
    a = server("a")
    time.sleep(2)

    store = Store(database_url)
    try:
        host_of = {name: (home / HOST_ID_FILE).read_text().strip() for name, home in homes.items()}
        assert host_of["a"] != host_of["b"]
        with store.session() as session:
            hosts = {run.id: run.host_id for run in session.scalars(select(FlowRun))}
        assert hosts == {
            **{run_id: host_of["a"] for run_id in on_a},
            **{run_id: host_of["b"] for run_id in on_b},
        }

        go.write_text("go")
        with Client(b.api_url) as client:
            finals = [wait_for_state(client, run_id, timeout=90) for run_id in on_a + on_b]
        assert [(run["state"], run["result"]) for run in finals] == [
            ("COMPLETED", i) for i in range(4)
        ], f"{finals}\nA: {a.log_tail()}\nB: {b.log_tail()}"
        assert crashed_states(store) == []
    finally:
        store.dispose()

    # Each host cleans up its own sandboxes, the one restarted included.
    deadline = time.monotonic() + 60
    for name in homes:
        runs_dir = homes[name] / "managed" / "runs"
        while [p for p in runs_dir.iterdir() if not p.name.startswith(".")]:
            assert time.monotonic() < deadline, f"host {name} left {list(runs_dir.iterdir())}"
            time.sleep(0.1)
