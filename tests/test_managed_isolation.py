"""Managed runs under bubblewrap: what a hostile flow can reach, whose uid it runs as, and what
happens on a host where isolation does not work. Through a real server and a managed pool."""

from __future__ import annotations

import logging
import os
import pwd
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from push_pools.blocks import SecretBox
from push_pools.client import Client
from push_pools.managed.isolation import FIX
from tests.conftest import deploy, wait_for_state

ATTACK_FLOW = """\
import os
from push_pools import flow


def attempt(what, action):
    try:
        result = action()
    except Exception as exc:
        print(f"{what}: denied ({type(exc).__name__})")
        return False
    print(f"{what}: GOT {result!r:.60}")
    return True


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def write(path):
    with open(path, "w") as handle:
        return handle.write("written by a managed run")


@flow(log_prints=True)
def attack(
    key: str = "", database: str = "", server_pid: int = 0, other_run: str = "", outside: str = ""
) -> dict:
    got = {
        "key": attempt("key file", lambda: read(key)),
        "database": attempt("database", lambda: read(database)),
        "server environ": attempt(
            "server environ", lambda: read(f"/proc/{server_pid}/environ")
        ),
        "other run": attempt("other run", lambda: os.listdir(other_run)),
        "other output": attempt(
            "other output", lambda: read(os.path.join(other_run, "output.log"))
        ),
    }
    for n, path in enumerate(outside.split(os.pathsep)):
        got[f"write {n}"] = attempt(f"write {path}", lambda: write(path))
    return got
"""

WHOAMI_FLOW = """\
import os
from push_pools import flow


@flow(log_prints=True)
def whoami() -> list:
    print(f"running as uid {os.getuid()}")
    return [os.getuid(), os.getgid(), os.getgroups()]
"""


@pytest.fixture
def home(home: Path, readable_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PUSH_POOLS_HOME where any user could reach it (tmp_path is private to root, which would
    hide it from a run that dropped to nobody even without isolation)."""
    path = readable_dir / "home"
    monkeypatch.setenv("PUSH_POOLS_HOME", str(path))
    return path


@pytest.fixture
def database_url(readable_dir: Path) -> str:
    """The SQLite store readable by every user, so that only isolation keeps it from a run."""
    return f"sqlite:///{readable_dir / 'store.db'}"


@pytest.fixture
def managed_server(
    server_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Client]]:
    """Starts a server with the given PUSH_POOLS_MANAGED_ISOLATION and a managed pool."""
    clients: list[Client] = []

    def start(isolation: str | None = None) -> Client:
        if isolation is not None:
            monkeypatch.setenv("PUSH_POOLS_MANAGED_ISOLATION", isolation)
        server = server_factory()
        clients.append(Client(server.api_url))
        clients[-1].create_work_pool({"name": "managed-pool", "type": "managed"})
        return clients[-1]

    yield start
    for client in clients:
        client.close()


@pytest.mark.parametrize("isolation", [None, "none"])
def test_a_hostile_flow_reaches_nothing_of_the_server_or_other_runs(
    isolation: str | None,
    managed_server: Callable[..., Client],
    cli: Callable[..., Any],
    home: Path,
    database_url: str,
    flow_dir: Path,
    readable_dir: Path,
) -> None:
    SecretBox.from_environment()  # the server's key file exists, as it does once a block does
    client = managed_server(isolation)
    victim = deploy(client, flow_dir, "sleepy", name="victim", pool="managed-pool")
    other = client.create_run(victim["id"], {"parameters": {"seconds": 60}})
    other = wait_for_state(client, other["id"], {"RUNNING"})
    other_run_dir = home / "managed" / "runs" / other["infrastructure_id"]
    assert (other_run_dir / "output.log").is_file()

    project = readable_dir / "attack"
    project.mkdir()
    (project / "flows.py").write_text(ATTACK_FLOW)
    outside = [readable_dir / "written.txt", home / "written.txt", flow_dir / "written.txt"]
    attacker = deploy(client, project, "attack", name="attacker", pool="managed-pool")
    run = client.create_run(
        attacker["id"],
        {
            "parameters": {
                "key": str(home / "encryption.key"),
                "database": database_url.split("///", 1)[1],
                "server_pid": os.getpid(),  # the embedded server runs in this process
                "other_run": str(other_run_dir),
                "outside": os.pathsep.join(str(p) for p in outside),
            }
        },
    )
    final = wait_for_state(client, run["id"], timeout=60)
    logs = cli("flow-run", "logs", run["id"]).stdout
    assert cli("flow-run", "cancel", other["id"]).exit_code == 0

    assert final["state"] == "COMPLETED", final["state_message"]
    got = final["result"]
    assert len(got) == 5 + len(outside)
    if isolation == "none":
        # The same flow, unisolated: every attempt works, so the assertions below can fail.
        assert got == dict.fromkeys(got, True), logs
        assert all(path.exists() for path in outside)
        assert client.get_work_pool("managed-pool")["isolation"] == "none"
        return
    assert got == dict.fromkeys(got, False), logs
    assert logs.count(": denied (") == len(got), logs
    assert "GOT" not in logs
    assert not any(path.exists() for path in outside)
    assert client.get_work_pool("managed-pool")["isolation"] == "bwrap"


@pytest.mark.skipif(os.geteuid() != 0, reason="runs drop privileges only when the server is root")
@pytest.mark.parametrize("setting", [None, "4242"])
def test_runs_of_a_root_server_drop_to_an_unprivileged_user(
    setting: str | None,
    managed_server: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
    readable_dir: Path,
) -> None:
    if setting is not None:
        monkeypatch.setenv("PUSH_POOLS_MANAGED_UID", setting)
    client = managed_server()
    (readable_dir / "flows.py").write_text(WHOAMI_FLOW)
    deployment = deploy(client, readable_dir, "whoami", pool="managed-pool")

    final = wait_for_state(client, client.create_run(deployment["id"], {})["id"], timeout=60)

    assert final["state"] == "COMPLETED", final["state_message"]
    uid, gid, groups = final["result"]
    nobody = pwd.getpwnam("nobody")
    assert (uid, gid) == ((nobody.pw_uid, nobody.pw_gid) if setting is None else (4242, 4242))
    assert groups == []


def test_without_bwrap_managed_runs_are_refused_until_isolation_is_turned_off(
    server_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    cli: Callable[..., Any],
    home: Path,
    flow_dir: Path,
    tmp_path: Path,
) -> None:
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    monkeypatch.setenv("PATH", str(no_tools))
    with caplog.at_level(logging.WARNING, logger="push_pools.server"):
        server = server_factory()
    warnings = [r.getMessage() for r in caplog.records if r.name == "push_pools.server"]
    assert len(warnings) == 1 and FIX in warnings[0], warnings
    with Client(server.api_url) as client:
        client.create_work_pool({"name": "managed-pool", "type": "managed"})
        deployment = deploy(client, flow_dir, "greet", pool="managed-pool")
        refused = wait_for_state(client, client.create_run(deployment["id"], {})["id"])
    shown = cli("work-pool", "inspect", "managed-pool", "--json").json()["isolation"]
    assert shown == "unavailable: bwrap (bubblewrap) not found on PATH"
    assert "unavailable: bwrap" in cli("work-pool", "inspect", "managed-pool").stdout

    assert refused["state"] == "CRASHED"
    assert FIX in refused["state_message"]
    assert "isolation is unavailable (bwrap (bubblewrap) not found" in refused["state_message"]
    assert not (home / "managed" / "runs").exists()  # nothing was started

    # The explicit opt-out: the same store and run, served by a server started with it.
    server.stop()
    caplog.clear()
    monkeypatch.setenv("PUSH_POOLS_MANAGED_ISOLATION", "none")
    with caplog.at_level(logging.WARNING, logger="push_pools.server"):
        server = server_factory()
    warnings = [r.getMessage() for r in caplog.records if r.name == "push_pools.server"]
    assert len(warnings) == 1 and "NOT isolated" in warnings[0], warnings
    assert cli("work-pool", "inspect", "managed-pool", "--json").json()["isolation"] == "none"
    with Client(server.api_url) as client:
        run = client.create_run(deployment["id"], {"parameters": {"name": "unisolated"}})
        final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "COMPLETED" and final["result"] == "greeted unisolated"


REQUIREMENTS_FLOW = """\
from push_pools import flow


@flow
def uses_six() -> str:
    import six

    return six.__version__
"""


def test_requirements_a_run_installs_are_its_own_and_leave_the_servers_python_alone(
    managed_server: Callable[..., Client], readable_dir: Path
) -> None:
    (readable_dir / "flows.py").write_text(REQUIREMENTS_FLOW)
    (readable_dir / "requirements.txt").write_text("six==1.16.0\n")
    server_packages = Path(sysconfig.get_paths()["purelib"])
    before = sorted(os.listdir(server_packages))
    client = managed_server()
    deployment = deploy(
        client,
        readable_dir,
        "uses_six",
        pool="managed-pool",
        pull_steps=[
            {"set_working_directory": {"directory": str(readable_dir)}},
            {"pip_install_requirements": {}},
        ],
    )

    final = wait_for_state(client, client.create_run(deployment["id"], {})["id"], timeout=120)

    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"] == "1.16.0"
    assert sorted(os.listdir(server_packages)) == before
