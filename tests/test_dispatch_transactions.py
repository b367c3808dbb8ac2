"""The dispatcher holds no database transaction while it calls an executor (issue 10).

A cloud call can take seconds (CloudWatch, ECS retries); on SQLite a transaction holds the whole
database, on PostgreSQL a locked run row holds every write to that run. Each test blocks one
executor call on an Event and shows that the API still writes meanwhile.

Store-marked: on PostgreSQL when PUSH_POOLS_TEST_DATABASE_URL is set, else on SQLite files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from push_pools.client import Client
from push_pools.dispatch import Dispatcher
from push_pools.embedded import EmbeddedServer
from push_pools.executors.base import InfrastructureState, Submission
from push_pools.states import StateType
from push_pools.store import runs as run_store
from push_pools.store.tables import FlowRun
from tests.dispatch_helpers import NOWHERE, FakeExecutor, seed_managed_runs

pytestmark = pytest.mark.store


class BlockingExecutor(FakeExecutor):
    """A FakeExecutor whose `blocking` call (logs, cleanup, cancel or remember) sets `entered`
    and then waits until the test sets `release`."""

    needs_remember = True

    def __init__(self, blocking: str, state: InfrastructureState) -> None:
        super().__init__(state)
        self.blocking = blocking
        self.entered = threading.Event()
        self.release = threading.Event()
        self.remembered: list[str] = []

    def _block(self, call: str) -> None:
        if call == self.blocking:
            self.entered.set()
            assert self.release.wait(120), "the test never released the executor"

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        self._block("logs")
        return ["Traceback: the container ran out of disk"]

    def cleanup(self, infrastructure_id: str) -> None:
        self._block("cleanup")
        super().cleanup(infrastructure_id)

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        self._block("cancel")
        super().cancel(infrastructure_id, grace_seconds)

    def remember(self, infrastructure_id: str, submission: Submission) -> None:
        self._block("remember")
        self.remembered.append(infrastructure_id)


@pytest.fixture
def server(server_factory: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    """An API server without a dispatcher of its own: the tests drive theirs by hand."""
    return server_factory(run_dispatcher=False)


@pytest.fixture
def dispatchers() -> Iterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def make(server: EmbeddedServer, executor: Any, name: str) -> Dispatcher:
        dispatcher = Dispatcher(
            server.store,
            api_url=NOWHERE,
            name=name,
            executor_factory=lambda _pool_type: executor,
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.stop()


def submitted_run(server: EmbeddedServer, dispatchers: Callable[..., Dispatcher]) -> str:
    """One managed run, claimed and submitted by a dispatcher whose executor starts nothing."""
    [run_id] = seed_managed_runs(server.store, 1)
    assert dispatchers(server, FakeExecutor(), "submitter").dispatch_once() == 1
    return run_id


def set_state(server: EmbeddedServer, run_id: str, state: StateType) -> None:
    with server.store.session() as session:
        run_store.record_state(session, run_store.lock_run(session, run_id), state, "by the test")


def run_row(server: EmbeddedServer, run_id: str) -> FlowRun:
    with server.store.session() as session:
        return run_store.get_run(session, run_id)


def watch_in_background(dispatcher: Dispatcher) -> tuple[threading.Thread, list[str]]:
    errors: list[str] = []

    def watch() -> None:
        try:
            dispatcher.watch_once()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=watch, name="watch-once")
    thread.start()
    return thread, errors


# (the call that blocks, the infrastructure's state, the run's state before the watch)
CASES = {
    "logs": (InfrastructureState.EXITED, None),  # a crash: the output is kept as logs
    "cleanup": (InfrastructureState.EXITED, StateType.COMPLETED),
    "cancel": (InfrastructureState.RUNNING, StateType.CANCELLING),
    "remember": (InfrastructureState.RUNNING, None),  # a run this dispatcher did not submit
}


@pytest.mark.parametrize("blocking", list(CASES))
def test_the_api_writes_while_the_dispatcher_waits_on_its_executor(
    blocking: str, server: EmbeddedServer, dispatchers: Callable[..., Dispatcher]
) -> None:
    run_id = submitted_run(server, dispatchers)
    infrastructure_state, run_state = CASES[blocking]
    if run_state is not None:
        set_state(server, run_id, run_state)
    executor = BlockingExecutor(blocking, infrastructure_state)
    watcher = dispatchers(server, executor, "watcher")

    thread, errors = watch_in_background(watcher)
    try:
        assert executor.entered.wait(60), f"the dispatcher never called {blocking}()"
        # The client gives up after 30 s, a failsafe only: with a transaction held across the
        # call, SQLite would answer 500 ("database is locked") after its 30 s busy timeout and
        # PostgreSQL would hold the log insert behind the run's row lock until the release.
        with Client(server.api_url, timeout=30) as client:
            client.create_work_pool({"name": "made-meanwhile", "type": "process"})
            client.add_logs(run_id, [{"message": "a line the engine sent meanwhile"}])
            assert client.get_work_pool("made-meanwhile")["name"] == "made-meanwhile"
        assert not executor.release.is_set()
        assert thread.is_alive(), f"{blocking}() returned before the test released it"
    finally:
        executor.release.set()
        thread.join(60)
    assert errors == []

    run = run_row(server, run_id)
    infrastructure_id = f"pp-{run_id}-1"
    if blocking == "logs":
        assert run.state_type == "CRASHED", run.state_message
        assert "exited" in (run.state_message or "")
    elif blocking == "cleanup":
        assert executor.cleanups == [infrastructure_id]
        assert run.infrastructure_released
    elif blocking == "cancel":
        assert executor.cancels == [infrastructure_id]
        assert run.state_type == "CANCELLED"
    else:
        assert executor.remembered == [infrastructure_id]
        assert run.state_type == "PENDING" and run.state_name == "Submitted"


def test_a_cancel_made_while_the_dispatcher_reads_a_crashed_runs_output_wins(
    server: EmbeddedServer, dispatchers: Callable[..., Dispatcher]
) -> None:
    """The crash is written back only if the run is still as the dispatcher saw it: a state
    recorded meanwhile (here a user's cancel) is not overwritten, and the run ends Cancelled."""
    run_id = submitted_run(server, dispatchers)
    executor = BlockingExecutor("logs", InfrastructureState.EXITED)
    watcher = dispatchers(server, executor, "watcher")

    thread, errors = watch_in_background(watcher)
    try:
        assert executor.entered.wait(60), "the dispatcher never read the output"
        with Client(server.api_url, timeout=30) as client:
            assert client.cancel_run(run_id)["state"] == "CANCELLING"
    finally:
        executor.release.set()
        thread.join(60)
    assert errors == []
    assert run_row(server, run_id).state_type == "CANCELLING", "the stale crash was written"

    watcher.watch_once()  # looks again at once: what it saw had changed
    with server.store.session() as session:
        states = [s.type.value for s in run_store.states_of(session, run_id)]
    assert states == ["SCHEDULED", "PENDING", "PENDING", "CANCELLING", "CANCELLED"]
    assert executor.cancels == [f"pp-{run_id}-1"]


class FailingCancelExecutor(FakeExecutor):
    """cancel() fails the first `failures` times, as a cloud API does in an outage."""

    def __init__(self, failures: int) -> None:
        super().__init__(InfrastructureState.RUNNING)
        self.failures = failures

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the cloud API is unreachable")
        super().cancel(infrastructure_id, grace_seconds)


def test_a_failed_stop_request_is_sent_again_and_the_run_still_ends_cancelled(
    server: EmbeddedServer, dispatchers: Callable[..., Dispatcher]
) -> None:
    clock = [1000.0]
    run_id = submitted_run(server, dispatchers)
    set_state(server, run_id, StateType.CANCELLING)
    executor = FailingCancelExecutor(failures=1)
    watcher = Dispatcher(
        server.store,
        api_url=NOWHERE,
        name="watcher",
        executor_factory=lambda _pool_type: executor,
        monotonic=lambda: clock[0],
    )
    try:
        watcher.watch_once()
        assert run_row(server, run_id).state_type == "CANCELLING"
        assert executor.cancels == []
        clock[0] += 1
        watcher.watch_once()
        assert run_row(server, run_id).state_type == "CANCELLED"
        assert executor.cancels == [f"pp-{run_id}-1"]
    finally:
        watcher.stop()
