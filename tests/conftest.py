"""Shared fixtures: an isolated home, a live API server on 127.0.0.1, the CLI in-process.

Store and API tests (marked `store`) run on SQLite by default and on PostgreSQL when
PUSH_POOLS_TEST_DATABASE_URL is set (scripts/test does that with a throwaway server); under
pytest-xdist each worker has its own database on that server (tests/pg_databases.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from push_pools.client import Client
from push_pools.embedded import EmbeddedServer
from tests.pg_databases import database_for, reset_postgres, server_url

ENV_VARS = (
    "PUSH_POOLS_HOME",
    "PUSH_POOLS_API_URL",
    "PUSH_POOLS_API_KEY",
    "PUSH_POOLS_DATABASE_URL",
    "PUSH_POOLS_ENCRYPTION_KEY",
    "PUSH_POOLS_MANAGED_ISOLATION",
    "PUSH_POOLS_MANAGED_UID",
)
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own PUSH_POOLS_HOME and none of the caller's settings."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("PUSH_POOLS_HOME", str(path))
    # Nothing may reach a real server by accident.
    monkeypatch.setenv("PUSH_POOLS_API_URL", "http://127.0.0.1:9/api")
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """PostgreSQL for `store` tests when configured, else a fresh SQLite file."""
    pg_server = server_url()
    if pg_server and request.node.get_closest_marker("store"):
        url = database_for(pg_server)
        reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def server_factory(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., EmbeddedServer]]:
    started: list[EmbeddedServer] = []

    def start(**kwargs: Any) -> EmbeddedServer:
        server = EmbeddedServer(database_url=database_url, **kwargs).start()
        started.append(server)
        monkeypatch.setenv("PUSH_POOLS_API_URL", server.api_url)
        monkeypatch.setenv("PUSH_POOLS_DATABASE_URL", database_url)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    return server_factory()


@pytest.fixture
def client(server: EmbeddedServer) -> Iterator[Client]:
    with Client(server.api_url) as c:
        yield c


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `push-pools ARGS` in this process, the way the console script does."""
    from push_pools.cli.main import run

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        old_argv = sys.argv
        sys.argv = ["push-pools", *args]
        try:
            run(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = old_argv
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return invoke


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A temporary directory every user can read, for code that managed runs load: they drop to
    an unprivileged uid when the tests run as root, and tmp_path is private to its owner."""
    path = Path(tempfile.mkdtemp(prefix="push-pools-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def flow_dir(readable_dir: Path) -> Path:
    """A project directory with a few flows to deploy."""
    directory = readable_dir / "project"
    directory.mkdir()
    (directory / "flows.py").write_text(
        "import os, sys, time\n"
        "from push_pools import flow\n\n"
        "@flow(log_prints=True)\n"
        "def greet(name: str = 'world', times: int = 1) -> str:\n"
        "    for _ in range(times):\n"
        "        print(f'hello {name}')\n"
        "    return f'greeted {name}'\n\n"
        "@flow\n"
        "def show_env(key: str) -> str:\n"
        "    print(os.environ.get(key, '<unset>'))\n"
        "    return os.environ.get(key, '<unset>')\n\n"
        "@flow\n"
        "def boom() -> None:\n"
        "    raise ValueError('kaboom')\n\n"
        "@flow\n"
        "def crash() -> None:\n"
        "    print('about to die', flush=True)\n"
        "    os._exit(3)\n\n"
        "@flow\n"
        "def sleepy(seconds: float = 30) -> None:\n"
        "    time.sleep(seconds)\n\n"
        "def not_a_flow() -> None:\n"
        "    pass\n"
    )
    return directory


def deploy(
    client: Client,
    flow_dir: Path,
    function: str,
    *,
    name: str = "test",
    pool: str | None = "pool",
    **extra: Any,
) -> dict[str, Any]:
    """Deploy flows.py:function from flow_dir through the SDK."""
    from push_pools.deploy.entrypoints import load_flow

    entrypoint = f"flows.py:{function}"
    flow = load_flow(entrypoint, flow_dir)
    body = {
        "name": name,
        "flow_name": flow.name,
        "entrypoint": entrypoint,
        "work_pool_name": pool,
        "parameter_schema": flow.parameter_schema(),
        "pull_steps": [{"set_working_directory": {"directory": str(flow_dir)}}],
        **extra,
    }
    return client.upsert_deployment(body)


def wait_for_state(
    client: Client, run_id: str, states: set[str] = FINAL, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get_run(run_id)
        if run["state"] in states:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['state']} after {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., Any]]:
    from push_pools.worker import Worker

    started: list[Worker] = []

    def start(pool: str = "pool", **kwargs: Any) -> Worker:
        import io

        from push_pools.executors.process.executor import ProcessExecutor

        kwargs.setdefault("poll_wait_seconds", 1.0)
        # The worker's echo of flow output goes to its own buffer, never into the output of the
        # in-process CLI that a test is reading (in real use they are separate processes).
        kwargs.setdefault("executor", ProcessExecutor(output=io.StringIO()))
        worker = Worker(pool, **kwargs).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(cancel_running=True, timeout=10)
