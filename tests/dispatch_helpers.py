"""Helpers for tests/test_dispatch.py: fake executors, seeding, dispatcher processes, servers.

Functions used as multiprocessing targets live here (not in the test module) so that a spawned
process can import them without importing pytest's test module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from push_pools.client import Client
from push_pools.executors.base import (
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    Submission,
)
from push_pools.models import DeploymentCreate, WorkPoolCreate
from push_pools.store import deployments as deployment_store
from push_pools.store import pools as pool_store
from push_pools.store.db import Store
from push_pools.store.tables import utcnow
from tests.conftest import wait_for_state

# Flow runs of the dispatchers below call back nowhere: every executor here is a fake.
NOWHERE = "http://127.0.0.1:9/api"


# --- executors ---------------------------------------------------------------------------------


class AppendingExecutor(BaseExecutor):
    """Starts nothing: appends "<dispatcher> <infrastructure name>" to a file shared by processes.

    One os.write of one short line on an O_APPEND descriptor, so lines of concurrent processes
    never interleave. The id returned is the infrastructure name; every status is RUNNING.
    """

    def __init__(self, dispatcher_name: str, path: str) -> None:
        self.dispatcher_name = dispatcher_name
        self.path = path

    def submit(self, submission: Submission) -> str:
        line = f"{self.dispatcher_name} {submission.infrastructure_name}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return submission.infrastructure_name

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        return {i: InfrastructureStatus(InfrastructureState.RUNNING) for i in infrastructure_ids}

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        return []

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        pass

    def cleanup(self, infrastructure_id: str) -> None:
        pass


class FakeExecutor(BaseExecutor):
    """Records every call; each infrastructure reports `state` (changeable at any time)."""

    def __init__(
        self,
        state: InfrastructureState = InfrastructureState.RUNNING,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.submissions: list[Submission] = []
        # (monotonic() when asked, the ids asked about)
        self.status_calls: list[tuple[float, list[str]]] = []
        self.cancels: list[str] = []
        self.cleanups: list[str] = []

    def submit(self, submission: Submission) -> str:
        with self._lock:
            self.submissions.append(submission)
        return submission.infrastructure_name

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        with self._lock:
            self.status_calls.append((self._monotonic(), list(infrastructure_ids)))
        return {i: InfrastructureStatus(self.state) for i in infrastructure_ids}

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        return []

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        with self._lock:
            self.cancels.append(infrastructure_id)

    def cleanup(self, infrastructure_id: str) -> None:
        with self._lock:
            self.cleanups.append(infrastructure_id)

    def submitted_names(self) -> list[str]:
        with self._lock:
            return [s.infrastructure_name for s in self.submissions]


# --- the store ---------------------------------------------------------------------------------


def seed_managed_runs(
    store: Store,
    count: int,
    *,
    pool: str = "managed",
    pool_type: str = "managed",
    concurrency_limit: int | None = None,
    job_variables: dict[str, Any] | None = None,
) -> list[str]:
    """A pool (managed unless `pool_type` says otherwise), one deployment in it, and `count`
    due Scheduled runs (one transaction)."""
    with store.session() as session:
        pool_store.create_pool(
            session,
            WorkPoolCreate(name=pool, type=pool_type, concurrency_limit=concurrency_limit),
        )
        deployment, _ = deployment_store.upsert_deployment(
            session,
            DeploymentCreate(
                name="bulk",
                flow_name="etl",
                entrypoint="flows.py:etl",
                work_pool_name=pool,
                job_variables=job_variables or {},
            ),
        )
        due = utcnow() - timedelta(minutes=1)
        return [
            deployment_store.insert_run(
                session,
                deployment,
                parameters={},
                job_variables={},
                scheduled_time=due + timedelta(milliseconds=i),
                tags=[],
            ).id
            for i in range(count)
        ]


def dispatch_until_idle(
    url: str, name: str, path: str, batch_size: int, start: Any, results: Any
) -> None:  # runs in a spawned process
    """One dispatcher: dispatch_once() until two calls in a row submit nothing."""
    from push_pools.dispatch import Dispatcher

    store = Store(url)
    dispatcher = Dispatcher(
        store,
        api_url=NOWHERE,
        name=name,
        batch_size=batch_size,
        executor_factory=lambda _pool_type: AppendingExecutor(name, path),
    )
    submitted = 0
    try:
        start.wait(120)
        deadline = time.monotonic() + 150
        idle = 0
        while idle < 2:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} still finds runs to submit after 150 s")
            count = dispatcher.dispatch_once()
            submitted += count
            idle = 0 if count else idle + 1
        results.put((name, submitted, None))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put((name, submitted, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        dispatcher.stop()
        store.dispose()


# --- a real server process ---------------------------------------------------------------------


def push_pools_command() -> list[str]:
    script = Path(sys.executable).with_name("push-pools")
    return [str(script)] if script.exists() else [sys.executable, "-m", "push_pools.cli.main"]


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux /proc)."""
    wanted = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(fields[9])
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link == f"socket:[{inode}]" for link in links for inode in inodes)


class ServerProcess:
    """`push-pools server start --port P` in its own process group, output to a log file."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        import httpx

        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*push_pools_command(), "server", "start", "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                healthy = httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                healthy = False
            # Only our own process counts: a free port picked by one test can be taken by a
            # server of another test running in parallel, which would answer for ours.
            if healthy and listens(self.process.pid, self.port):
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not start in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server's process group (what `kill -9` does) and reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"


def kill_sandboxes(runs_dir: Path) -> None:
    """SIGKILL what managed sandboxes under `runs_dir` still run (engine groups, sandboxes)."""
    from push_pools.managed import PID, SANDBOX_PID, is_alive, read_pid_file

    if not runs_dir.is_dir():
        return
    for run_dir in runs_dir.iterdir():
        for name in (PID, SANDBOX_PID):
            ref = read_pid_file(run_dir / name)
            if ref is None or not is_alive(ref):
                continue
            try:
                os.killpg(ref[0], signal.SIGKILL)  # both lead their own process group
            except (ProcessLookupError, PermissionError):
                pass


# --- runs through a server -----------------------------------------------------------------------

TRIVIAL_FLOW = (
    "from push_pools import flow\n\n\n@flow\ndef trivial(i: int = 0) -> int:\n    return i\n"
)


def write_trivial_flow(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flows.py").write_text(TRIVIAL_FLOW)
    return directory


def submitted_after(client: Client, run: dict[str, Any], timeout: float = 15) -> float:
    """Seconds from the run's creation to its Submitted state, both as the server recorded them."""
    deadline = time.monotonic() + timeout
    while True:
        states = client.run_states(run["id"])
        submitted = [s for s in states if s["name"] == "Submitted"]
        if submitted:
            created = datetime.fromisoformat(run["created"])
            return (datetime.fromisoformat(submitted[0]["timestamp"]) - created).total_seconds()
        assert time.monotonic() < deadline, f"run not submitted after {timeout} s: {states}"
        time.sleep(0.02)


def wake_up_latencies(
    client: Client, deployment_id: str, runs_dir: Path, count: int
) -> list[float]:
    """Create `count` runs of a trivial managed deployment one after the other; for each, the
    seconds from creation to Submitted. Each run completes and its sandbox is removed before
    the next is made: with nothing left to watch the dispatcher sleeps until woken (or its 1 s
    idle poll), so each figure measures the wake-up."""
    latencies = []
    for i in range(count):
        run = client.create_run(deployment_id, {"parameters": {"i": i}})
        latencies.append(submitted_after(client, run))
        final = wait_for_state(client, run["id"], timeout=60)
        assert (final["state"], final["result"]) == ("COMPLETED", i), final
        deadline = time.monotonic() + 30
        while (runs_dir / final["infrastructure_id"]).exists():
            assert time.monotonic() < deadline, "the finished run's sandbox was never removed"
            time.sleep(0.05)
    return latencies


def server_env(home: Path, port: int, database_url: str, lease_seconds: float) -> dict[str, str]:
    """The environment of `push-pools server start --port PORT` on this home and store, whose
    claims left by a killed server are taken over `lease_seconds` after they were made."""
    return {
        **os.environ,
        "PUSH_POOLS_HOME": str(home),
        "PUSH_POOLS_API_URL": f"http://127.0.0.1:{port}/api",
        "PUSH_POOLS_DATABASE_URL": database_url,
        "PUSH_POOLS_DISPATCH_LEASE_SECONDS": str(lease_seconds),
    }
