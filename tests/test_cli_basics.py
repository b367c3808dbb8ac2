"""The CLI as users meet it: real `push-pools` processes, help texts, the demo, the README tour."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dispatch_helpers import listens

PUSH_POOLS = Path(sys.executable).parent / "push-pools"
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CLOUD_SDKS = ("boto3", "botocore", "google.cloud", "azure")
SERVER_ONLY = ("sqlalchemy", "fastapi", "httpx", "pydantic", "uvicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def base_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSH_POOLS_")}
    env["PUSH_POOLS_HOME"] = str(home)
    env["PUSH_POOLS_API_URL"] = api_url or "http://127.0.0.1:9/api"
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    return env


def pp(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60):
    return subprocess.run(
        [str(PUSH_POOLS), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"


# --- start-up cost: no cloud SDK, and nothing of the server for --help ----------------------


@pytest.fixture
def fake_sdks(tmp_path: Path) -> Path:
    """Importable stand-ins for the cloud SDKs, so an import of one shows up even where the real
    packages are not installed."""
    root = tmp_path / "fake-sdks"
    for package in ("boto3", "botocore", "google", "google/cloud", "azure"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    return root


def imported_modules(stderr: str) -> set[str]:
    """Module names from `-X importtime` / PYTHONPROFILEIMPORTTIME output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_help_imports_no_cloud_sdk_and_no_server_stack(home: Path, fake_sdks: Path) -> None:
    env = base_env(home)
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(fake_sdks), str(REPO)])
    result = pp("--help", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "work-pool" in result.stdout
    modules = imported_modules(result.stderr)
    assert "push_pools.cli.main" in modules  # the profile did see the CLI's imports
    for package in (*CLOUD_SDKS, *SERVER_ONLY):
        assert loaded(modules, package) == [], f"`push-pools --help` imported {package}"
    # Nor any command's module: the command list comes from push_pools.cli.main.SUMMARIES.
    commands = [m for m in loaded(modules, "push_pools.cli") if m.count(".") == 2]
    assert set(commands) <= {
        "push_pools.cli.main",
        "push_pools.cli.help",
        "push_pools.cli.coercion",
    }
    assert loaded(modules, "provisioners") == []


def test_top_level_help_summaries_are_the_commands_own() -> None:
    import typer.main

    from push_pools.cli.main import SUMMARIES, build_app

    every = typer.main.get_command(build_app(["an-unknown-command"]))
    own = {name: every.get_command(None, name).get_short_help_str(300) for name in SUMMARIES}
    assert list(SUMMARIES) == every.list_commands(None)
    assert SUMMARIES == own


@pytest.mark.store
def test_work_pool_ls_imports_no_cloud_sdk(server, home: Path, fake_sdks: Path) -> None:
    from push_pools.client import Client

    with Client(server.api_url) as client:
        client.create_work_pool({"name": "sdk-free", "type": "process"})
    env = base_env(home, server.api_url)
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(fake_sdks), str(REPO)])
    result = pp("work-pool", "ls", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sdk-free" in result.stdout
    modules = imported_modules(result.stderr)
    # It did talk to the server, through the standard library: httpx is not needed for that.
    assert "push_pools.http_stdlib" in modules
    assert loaded(modules, "httpx") == []
    for package in CLOUD_SDKS:
        assert loaded(modules, package) == [], f"`push-pools work-pool ls` imported {package}"
    # httpx's own command-line tool (and the click and pygments it needs) is never loaded, nor
    # pydantic (typer's option conversion would load it), with the typer whose private
    # conversion push_pools/cli/coercion.py knows; another typer converts values itself.
    from push_pools.cli.coercion import LIGHT_COERCION

    avoided = ("click", "pygments", "pydantic") if LIGHT_COERCION else ("click", "pygments")
    for package in avoided:
        assert loaded(modules, package) == [], f"`push-pools work-pool ls` imported {package}"


# --- help texts ---------------------------------------------------------------------------------

GROUPS = {
    (): ["server", "work-pool", "work-queue", "worker", "deploy", "deployment", "flow-run",
         "block", "demo"],
    ("work-pool",): ["create", "ls", "inspect", "update", "pause", "resume", "delete",
                     "set-concurrency-limit", "clear-concurrency-limit",
                     "get-default-base-job-template"],
    ("work-queue",): ["create", "ls", "inspect", "update", "pause", "resume", "delete"],
    ("deployment",): ["ls", "inspect", "run", "pause", "resume", "delete"],
    ("flow-run",): ["ls", "inspect", "logs", "cancel", "delete"],
    ("block",): ["create", "ls", "inspect", "delete", "types"],
    ("worker",): ["start"],
    ("server",): ["start"],
    ("worker", "start"): ["--pool", "--queue", "--limit"],
    ("server", "start"): ["--host", "--port"],
    ("deploy",): ["--name", "--pool", "--cron", "--interval", "--timezone", "--param",
                  "--job-variable", "--queue", "--tag", "--no-prompt", "--json", "--all"],
    ("demo",): ["--runs"],
    ("deployment", "run"): ["--param", "--job-variable", "--watch"],
    ("flow-run", "ls"): ["--state", "--deployment", "--pool", "--limit", "--json"],
    ("flow-run", "logs"): ["--follow"],
    ("block", "create"): ["--set", "--from-file", "--overwrite"],
    ("work-pool", "create"): ["--type", "--base-job-template", "--paused", "--concurrency-limit"],
}  # fmt: skip


@pytest.mark.parametrize("group", list(GROUPS), ids=lambda g: " ".join(g) or "push-pools")
def test_help_lists_the_documented_commands(
    cli, monkeypatch: pytest.MonkeyPatch, group: tuple[str, ...]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = cli(*group, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout
    for word in GROUPS[group]:
        assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", result.stdout), (
            f"`push-pools {' '.join(group)} --help` does not mention {word}:\n{result.stdout}"
        )


@pytest.mark.parametrize("group", [(), ("work-pool",), ("flow-run",), ("work-queue",)])
def test_command_lists_show_whole_summaries_at_80_columns(
    cli, monkeypatch: pytest.MonkeyPatch, group: tuple[str, ...]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = cli(*group, "--help")
    commands = result.stdout.split("Commands:", 1)[1]
    assert "..." not in commands, commands


def test_version_is_printed(cli) -> None:
    from push_pools import __version__

    for flag in ("--version", "-V"):
        result = cli(flag)
        assert result.exit_code == 0
        assert result.stdout.strip() == f"push-pools {__version__}"


def test_work_pool_create_help_lists_every_pool_type(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from push_pools import pool_types

    monkeypatch.setenv("COLUMNS", "200")
    result = cli("work-pool", "create", "--help")
    for name in pool_types.names():
        assert name in result.stdout


def test_deployment_run_has_no_two_letter_short_flag(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = cli("deployment", "run", "--help")
    assert "--job-variable" in result.stdout
    assert not re.search(r"(?<![\w-])-[a-z]{2,}\b", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("work-pools", "ls"), "work-pools"),
        (("deployment", "run"), "name"),
        (
            ("work-pool", "create", "x", "--type", "process", "--concurrency-limit", "abc"),
            "--concurrency-limit",
        ),
    ],
    ids=["unknown-command", "missing-argument", "bad-option-value"],
)
def test_usage_errors_are_one_clean_message(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    result = pp(*args, env=base_env(tmp_path / "home"))
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


# --- the demo -----------------------------------------------------------------------------------


def processes_with_env(needle: str) -> list[int]:
    """Pids of live processes whose environment mentions `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_demo_runs_and_cleans_up(home: Path, readable_dir: Path) -> None:
    # Where the demo's temporary directories go, so the test can watch them; readable by all,
    # as /tmp is, since the managed run reads the flow as an unprivileged user.
    temp = readable_dir
    env = base_env(home)
    env["TMPDIR"] = str(temp)  # the demo's temporary home goes here, where we can watch it
    started = time.monotonic()
    result = pp("demo", env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert_ok(result)
    assert elapsed < 60
    out = result.stdout
    assert "Demo finished" in out
    assert out.count("COMPLETED") >= 3  # three runs by default, all completed
    assert re.search(r"hello \w+!", out), out
    assert "FAILED" not in out and "CRASHED" not in out

    # Nothing left behind: no temporary directory, no server, no process of the demo.
    match = re.search(r"API server on http://127\.0\.0\.1:(\d+)/api \(store in (\S+)\)", out)
    assert match, out
    port, demo_home = int(match.group(1)), match.group(2)
    assert demo_home.startswith(str(temp))
    assert not Path(demo_home).exists()
    assert list(temp.glob("push-pools-demo-*")) == []
    assert not is_listening(port)
    assert processes_with_env(f"PUSH_POOLS_HOME={demo_home}") == []
    # The user's own home is not touched by the demo.
    assert not (home / "push-pools.db").exists()


# --- the README tour with real processes ------------------------------------------------------


class Tour:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.env = base_env(self.home, self.api_url)
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[str]:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed by the process end
        process = subprocess.Popen(
            [str(PUSH_POOLS), *args],
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()

    def cli(self, *args: str, cwd: Path | None = None, timeout: float = 60):
        return pp(*args, env=self.env, cwd=cwd or self.root, timeout=timeout)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def tour(tmp_path: Path) -> Iterator[Tour]:
    tour = Tour(tmp_path)
    try:
        yield tour
    finally:
        tour.stop_all()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(interval)


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=1).json() == {"status": "ok"}
    except (httpx.HTTPError, ValueError):
        return False


def test_the_demo_flow_ships_inside_the_package() -> None:
    # The demo must work from an installed wheel, not only from a checkout.
    import push_pools
    from push_pools.cli.demo import examples_dir

    package = Path(push_pools.__file__).resolve().parent
    assert examples_dir().is_relative_to(package)
    assert (examples_dir() / "hello_flow.py").is_file()
    # The README's tour deploys the same file from examples/.
    assert (EXAMPLES / "hello_flow.py").resolve() == (examples_dir() / "hello_flow.py").resolve()


def test_readme_tour_with_real_processes(tour: Tour) -> None:
    server = tour.start("server", "server", "start", "--port", str(tour.port))
    wait_until(
        lambda: (healthy(tour.api_url) and listens(server.pid, tour.port)) or server.poll(),
        30,
        "server start",
    )
    assert server.poll() is None, tour.log("server")
    assert tour.api_url in tour.log("server")

    assert_ok(tour.cli("work-pool", "create", "--type", "process", "tutorial-process-pool"))
    listed = tour.cli("work-pool", "ls")
    assert_ok(listed)
    assert "tutorial-process-pool" in listed.stdout and "NOT_READY" in listed.stdout

    worker = tour.start("worker", "worker", "start", "--pool", "tutorial-process-pool")

    def pool_status() -> str | None:
        result = tour.cli("work-pool", "ls", "--json")
        assert_ok(result)
        [pool] = json.loads(result.stdout)
        return pool["status"] if pool["status"] == "READY" else None

    wait_until(pool_status, 30, "the pool becoming READY", interval=0.5)
    assert worker.poll() is None, tour.log("worker")

    code = tour.root / "code"
    code.mkdir()
    shutil.copy(EXAMPLES / "hello_flow.py", code / "hello_flow.py")
    deployed = tour.cli(
        "deploy", "hello_flow.py:hello", "-n", "my-deployment", "-p", "tutorial-process-pool",
        "--no-prompt", cwd=code,
    )  # fmt: skip
    assert_ok(deployed)
    assert "hello/my-deployment" in deployed.stdout

    run = tour.cli(
        "deployment", "run", "hello/my-deployment", "--param", "name=Tutorial", "--watch",
        "--watch-timeout", "45", timeout=60,
    )  # fmt: skip
    assert_ok(run)
    assert "hello Tutorial!" in run.stdout
    assert "COMPLETED" in run.stdout
    run_id = run.stdout.splitlines()[1].strip()  # `run` prints the run id on its own line
    logs = tour.cli("flow-run", "logs", run_id)
    assert_ok(logs)
    assert "hello Tutorial!" in logs.stdout

    # A 2-second interval schedule makes runs that the worker completes on its own.
    scheduled = tour.cli(
        "deploy", "hello_flow.py:hello", "-n", "every-2s", "-p", "tutorial-process-pool",
        "--interval", "2", "--no-prompt", cwd=code,
    )  # fmt: skip
    assert_ok(scheduled)

    def completed_runs() -> list[dict]:
        result = tour.cli(
            "flow-run", "ls", "--state", "COMPLETED", "--deployment", "hello/every-2s", "--json"
        )
        assert_ok(result)
        return json.loads(result.stdout)

    runs = wait_until(completed_runs, 15, "a scheduled run completing", interval=1)
    assert all(r["deployment_name"] == "every-2s" for r in runs)
    assert all(r["state"] == "COMPLETED" for r in runs)
    assert_ok(tour.cli("deployment", "pause", "hello/every-2s"))

    # SIGTERM stops the worker cleanly (it waits for running runs), then the server.
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, tour.log("worker")
    assert "Traceback" not in tour.log("worker")
    server.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert server.wait(30) in (0, -signal.SIGTERM), tour.log("server")
    assert "Traceback" not in tour.log("server")
    assert not is_listening(tour.port)


def test_server_start_on_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = base_env(tmp_path / "home", f"http://127.0.0.1:{port}/api")
        result = pp("server", "start", "--port", str(port), env=env, timeout=60)
        # Without --port: the port of PUSH_POOLS_API_URL, which is busy too.
        from_url = pp("server", "start", env=env, timeout=60)
    for outcome in (result, from_url):
        assert outcome.returncode == 1
        assert outcome.stdout == ""  # no "listening" banner for a server that never listened
        assert len(outcome.stderr.strip().splitlines()) == 1
        assert f"port {port} on 127.0.0.1 is already in use" in outcome.stderr


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_server_start_refuses_a_bad_dispatch_lease_in_one_line(tmp_path: Path, value: str) -> None:
    env = base_env(tmp_path / "home", "http://127.0.0.1:9/api")
    env["PUSH_POOLS_DISPATCH_LEASE_SECONDS"] = value
    result = pp("server", "start", "--port", str(free_port()), env=env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"PUSH_POOLS_DISPATCH_LEASE_SECONDS={value!r}" in result.stderr
    assert "default of 30" in result.stderr


def test_cli_without_a_server_names_the_url(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path / "home", f"http://127.0.0.1:{port}/api")
    result = pp("work-pool", "ls", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, as the README says
