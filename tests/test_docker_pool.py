"""Docker pools end to end: a live server, a worker, and the Docker emulator running each flow
run's container as a local subprocess (tests/emulators/docker). The real docker SDK talks to it
over HTTP through DOCKER_HOST, as it would to a Docker engine."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FINAL, deploy, wait_for_state

from push_pools import pool_types
from push_pools.executors.docker.executor import LABEL_RUN_ID, DockerExecutor
from push_pools.executors.docker.template import POOL_TYPE
from tests.emulators.docker import DockerEmulator

pytestmark = pytest.mark.store

WORKTREE = Path(__file__).resolve().parent.parent
PUSH_POOLS = Path(sys.executable).parent / "push-pools"
# The containers' python imports this checkout's push-pools, not the installed one.
CODE_ENV = {"PYTHONPATH": str(WORKTREE)}
IMAGE_ENV = {"PATH", "LANG", "PYTHON_VERSION"}  # what python:3.12-slim sets itself


@pytest.fixture(autouse=True)
def docker_type() -> None:
    """The type as its entry point registers it (the shared venv's metadata may predate it)."""
    if POOL_TYPE.name not in pool_types.names():
        pool_types.register(POOL_TYPE)


@pytest.fixture(scope="module")
def emulator() -> Iterator[DockerEmulator]:
    with DockerEmulator() as engine:
        yield engine


@pytest.fixture
def engine(emulator: DockerEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerEmulator]:
    emulator.reset()
    monkeypatch.setenv("DOCKER_HOST", emulator.docker_host)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    yield emulator
    assert emulator.errors == []


@pytest.fixture
def start_worker(worker_factory, engine: DockerEmulator) -> Callable[..., Any]:
    def start(pool: str = "docker-pool", **kwargs: Any) -> Any:
        kwargs.setdefault("executor", DockerExecutor(output=io.StringIO()))
        kwargs.setdefault("poll_wait_seconds", 0.5)
        return worker_factory(pool, **kwargs)

    return start


def make_pool(client, name: str = "docker-pool", **defaults: Any) -> dict[str, Any]:
    template = client.default_base_job_template("docker")
    properties = template["variables"]["properties"]
    for key, value in {"env": CODE_ENV, **defaults}.items():
        properties[key]["default"] = value
    return client.create_work_pool({"name": name, "type": "docker", "base_job_template": template})


def container_of(engine: DockerEmulator, run_id: str) -> Any:
    found = [c for c in engine.containers if c.config["Labels"].get(LABEL_RUN_ID) == run_id]
    assert len(found) == 1, [c.name for c in engine.containers]
    return found[0]


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the default template --------------------------------------------------------------------


def test_template_has_prefects_docker_variables_and_privileged_is_off(client) -> None:
    template = client.default_base_job_template("docker")
    properties = template["variables"]["properties"]
    for name in (
        "image",
        "image_pull_policy",
        "env",
        "command",
        "networks",
        "volumes",
        "mem_limit",
        "auto_remove",
        "privileged",
        "labels",
        "stream_output",
        "name",
    ):
        assert template["job_configuration"][name] == "{{ " + name + " }}"
        assert name in properties
    assert properties["image_pull_policy"]["enum"] == ["IfNotPresent", "Always", "Never"]
    assert properties["privileged"]["default"] is False
    pool = client.create_work_pool({"name": "d", "type": "docker"})
    assert pool["type"] == "docker"


@pytest.mark.parametrize(
    ("variables", "needle"),
    [
        ({"mem_limit": "lots"}, "'mem_limit'"),
        ({"volumes": ["/data"]}, "'volumes'"),
        ({"volumes": ["/data:/in:rx"]}, "ro or rw"),
        ({"networks": ["n"], "network_mode": "host"}, "cannot both be set"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
    ],
)
def test_bad_job_variables_are_refused_at_deploy(client, flow_dir, variables, needle) -> None:
    from push_pools.errors import InvalidInput

    make_pool(client)
    with pytest.raises(InvalidInput) as refused:
        deploy(client, flow_dir, "greet", pool="docker-pool", job_variables=variables)
    assert needle in refused.value.message
    assert client.list_deployments() == []


# --- runs end to end -------------------------------------------------------------------------


def test_twenty_flows_run_end_to_end_through_worker_start(
    client, server, home, flow_dir, engine, tmp_path
) -> None:
    make_pool(client, auto_remove=True)
    deployment = deploy(client, flow_dir, "greet", pool="docker-pool")
    env = {
        **os.environ,
        "PUSH_POOLS_API_URL": server.api_url,
        "PUSH_POOLS_HOME": str(home),
        "PYTHONPATH": str(WORKTREE),
    }
    output = tmp_path / "worker.out"
    with output.open("w") as sink:
        worker = subprocess.Popen(
            [str(PUSH_POOLS), "worker", "start", "--pool", "docker-pool", "--limit", "5"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        runs = [
            client.create_run(deployment["id"], {"parameters": {"name": f"n{i}"}})
            for i in range(20)
        ]
        deadline = time.monotonic() + 120
        for run in runs:
            done = wait_for_state(client, run["id"], timeout=max(1, deadline - time.monotonic()))
            assert done["state"] == "COMPLETED", (done["state_message"], output.read_text())
            assert done["result"] == f"greeted {run['parameters']['name']}"
            assert done["infrastructure_id"].startswith("docker:")
        # Each ran in its own container, which auto_remove took away once it was done.
        wait_for(lambda: not engine.containers, 10, "the containers to be removed")
        creates = [
            r for r in engine.requests if r.method == "POST" and r.path == "/containers/create"
        ]
        assert len(creates) == 20
        # python:3.12-slim was pulled once (IfNotPresent), not per run.
        assert len(engine.pulls) == 1
        assert "hello n7" in output.read_text()  # stream_output echoes the containers' output
        # The engine in the container ships the flow's lines into the run's logs.
        logs = [entry["message"] for entry in client.get_logs(runs[7]["id"])]
        assert "hello n7" in logs
    finally:
        worker.terminate()
        worker.wait(30)
    text = output.read_text()
    assert "Worker stopped" in text
    assert "Traceback" not in text


def test_container_gets_exactly_the_env_command_and_settings(
    client, flow_dir, engine, start_worker
) -> None:
    make_pool(
        client,
        env={**CODE_ENV, "POOL_KEY": "p", "MY_KEY": "pool"},
        labels={"team": "data"},
        mem_limit="256m",
        volumes=["/srv/in:/in:ro"],
    )
    deployment = deploy(
        client,
        flow_dir,
        "show_env",
        pool="docker-pool",
        parameters={"key": "MY_KEY"},
        job_variables={
            "env": {"MY_KEY": "from-deployment"},
            "command": "python -u -m push_pools.engine",
        },
    )
    start_worker()
    run = client.create_run(deployment["id"], {"parameters": {"key": "MY_KEY"}})
    done = wait_for_state(client, run["id"])
    assert done["state"] == "COMPLETED", done["state_message"]
    assert done["result"] == "from-deployment"  # what the flow's process saw

    container = container_of(engine, run["id"])
    env = dict(item.split("=", 1) for item in container.config["Env"])
    name = container.name
    assert env.pop("PUSH_POOLS_API_KEY")  # the run's own token from the claim
    assert {k: v for k, v in env.items() if k not in IMAGE_ENV} == {
        **CODE_ENV,
        "POOL_KEY": "p",
        "MY_KEY": "from-deployment",
        "PUSH_POOLS_FLOW_RUN_ID": run["id"],
        "PUSH_POOLS_API_URL": client.api_url,
        "PUSH_POOLS_INFRASTRUCTURE_ID": f"docker:{name}",
    }
    assert container.config["Cmd"] == ["python", "-u", "-m", "push_pools.engine"]
    assert container.config["Image"] == "python:3.12-slim"
    assert container.config["Labels"]["team"] == "data"
    assert container.config["Labels"]["io.push-pools.flow-run-name"] == done["name"]
    host = container.host_config
    assert host["Privileged"] is False
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["Binds"] == ["/srv/in:/in:ro"]
    # The server listens on 127.0.0.1: only the host's network reaches it from a container.
    assert host["NetworkMode"] == "host"
    assert done["infrastructure_id"] == f"docker:{name}"
    assert container.state.exit_code == 0  # auto_remove is off: the container stays


def test_default_command_and_a_crash_with_exit_code_and_last_lines(
    client, flow_dir, engine, start_worker
) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "crash", pool="docker-pool")
    start_worker()
    run = client.create_run(deployment["id"], {})
    done = wait_for_state(client, run["id"])
    assert done["state"] == "CRASHED"
    assert "container exited with code 3" in done["state_message"]
    assert "about to die" in done["state_message"]
    assert client.run_states(run["id"])[-1]["details"]["exit_code"] == 3
    assert container_of(engine, run["id"]).config["Cmd"] == ["python", "-m", "push_pools.engine"]


def test_cancel_stops_the_container(client, cli, flow_dir, engine, worker_factory) -> None:
    make_pool(client)
    deployment = deploy(client, flow_dir, "sleepy", pool="docker-pool")
    # The default heartbeat: the cancel request must wake it.
    worker_factory("docker-pool", executor=DockerExecutor(output=io.StringIO()))
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 60}})
    running = wait_for_state(client, run["id"], {"RUNNING"} | FINAL, timeout=20)
    assert running["state"] == "RUNNING", running["state_message"]
    container = container_of(engine, run["id"])
    assert container.running

    cancelled = cli("flow-run", "cancel", run["id"])
    assert cancelled.exit_code == 0, cancelled.stderr
    done = wait_for_state(client, run["id"], timeout=20)
    assert done["state"] == "CANCELLED"
    wait_for(lambda: not container.running, 10, "the container to stop")
    stops = [r for r in engine.requests if r.path.endswith(f"/containers/{container.name}/stop")]
    assert len(stops) == 1
    assert container.state.exit_code == 128 + 15  # stopped with SIGTERM, not killed


def test_a_template_without_defaults_runs_with_the_types_defaults(
    client, flow_dir, engine, start_worker
) -> None:
    """A template brought from Prefect leaves pull policy, flags and limits without defaults."""
    template = client.default_base_job_template("docker")
    properties = template["variables"]["properties"]
    for name in ("image_pull_policy", "auto_remove", "privileged", "stream_output", "networks"):
        properties[name].pop("default")
    properties["env"]["default"] = CODE_ENV
    client.create_work_pool(
        {"name": "docker-pool", "type": "docker", "base_job_template": template}
    )
    deployment = deploy(client, flow_dir, "greet", pool="docker-pool")
    start_worker()
    run = client.create_run(deployment["id"], {"parameters": {"name": "Ada"}})
    done = wait_for_state(client, run["id"])
    assert done["state"] == "COMPLETED", done["state_message"]
    container = container_of(engine, run["id"])
    assert container.host_config["Privileged"] is False
    assert len(engine.pulls) == 1  # IfNotPresent


def test_a_fixed_name_in_use_gets_the_run_id_and_containers_join_every_network(
    client, flow_dir, engine, start_worker
) -> None:
    import docker

    sdk = docker.from_env()
    for network in ("backend", "frontend"):
        sdk.networks.create(network)
    sdk.close()
    make_pool(client)
    variables = {"name": "etl runner", "networks": ["backend", "frontend"]}
    deployment = deploy(client, flow_dir, "greet", pool="docker-pool", job_variables=variables)
    start_worker()
    runs = [client.create_run(deployment["id"], {}) for _ in range(2)]
    for run in runs:
        assert wait_for_state(client, run["id"])["state"] == "COMPLETED"
    names = {run["id"]: container_of(engine, run["id"]).name for run in runs}
    # Docker names allow no spaces; the second run finds the name taken by the first's container.
    assert sorted(names.values()) == sorted(
        ["etl-runner", f"etl-runner-{runs[1]['id'][:8]}"]
        if names[runs[0]["id"]] == "etl-runner"
        else [f"etl-runner-{runs[0]['id'][:8]}", "etl-runner"]
    )
    for run in runs:
        assert set(container_of(engine, run["id"]).networks) == {"backend", "frontend"}


def test_an_image_named_by_digest_is_pulled_by_that_digest(
    client, flow_dir, engine, start_worker
) -> None:
    """An image deploy stores the pushed digest as the runs' image."""
    import docker

    sdk = docker.from_env()
    sdk.images.pull("python", tag="3.12-slim")
    [pinned] = sdk.images.get("python:3.12-slim").attrs["RepoDigests"]
    sdk.images.remove("python:3.12-slim", force=True)  # the worker must pull it again
    sdk.close()
    make_pool(client)
    deployment = deploy(
        client, flow_dir, "greet", pool="docker-pool", job_variables={"image": pinned}
    )
    start_worker()
    run = client.create_run(deployment["id"], {})
    done = wait_for_state(client, run["id"])
    assert done["state"] == "COMPLETED", done["state_message"]
    assert engine.pulls[-1].reference == pinned
    assert container_of(engine, run["id"]).config["Image"] == pinned


# --- bad input -------------------------------------------------------------------------------


def test_pull_policy_never_with_a_missing_image_crashes_the_run_saying_so(
    client, flow_dir, engine, start_worker
) -> None:
    make_pool(client)
    deployment = deploy(
        client,
        flow_dir,
        "greet",
        pool="docker-pool",
        job_variables={"image": "acme/flows:missing", "image_pull_policy": "Never"},
    )
    start_worker()
    run = client.create_run(deployment["id"], {})
    done = wait_for_state(client, run["id"])
    assert done["state"] == "CRASHED"
    assert "acme/flows:missing" in done["state_message"]
    assert "image_pull_policy is Never" in done["state_message"]
    assert engine.pulls == []  # Never means never
    assert engine.containers == []


def test_always_pulls_before_each_run_and_a_missing_image_says_why(
    client, flow_dir, engine, start_worker
) -> None:
    make_pool(client, image_pull_policy="Always")
    greet = deploy(client, flow_dir, "greet", pool="docker-pool")
    missing = deploy(
        client,
        flow_dir,
        "greet",
        name="missing",
        pool="docker-pool",
        job_variables={"image": "acme/nowhere:1"},
    )
    start_worker()
    first = client.create_run(greet["id"], {})
    assert wait_for_state(client, first["id"])["state"] == "COMPLETED"
    second = client.create_run(greet["id"], {})
    assert wait_for_state(client, second["id"])["state"] == "COMPLETED"
    assert len(engine.pulls) == 2
    failed = client.create_run(missing["id"], {})
    done = wait_for_state(client, failed["id"])
    assert done["state"] == "CRASHED"
    assert "acme/nowhere:1" in done["state_message"]
    assert "could not be pulled" in done["state_message"]


def test_a_missing_network_crashes_the_run_and_leaves_no_container(
    client, flow_dir, engine, start_worker
) -> None:
    make_pool(client)
    deployment = deploy(
        client, flow_dir, "greet", pool="docker-pool", job_variables={"networks": ["nowhere"]}
    )
    start_worker()
    run = client.create_run(deployment["id"], {})
    done = wait_for_state(client, run["id"])
    assert done["state"] == "CRASHED"
    assert "network nowhere not found" in done["state_message"]
    assert engine.containers == []


def test_runs_wait_while_the_engine_is_down_and_start_when_it_is_back(
    client, flow_dir, worker_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    make_pool(client)
    sleepy = deploy(client, flow_dir, "sleepy", pool="docker-pool")
    greet = deploy(client, flow_dir, "greet", pool="docker-pool")
    first = DockerEmulator(port=port).start()
    try:
        worker_factory(
            "docker-pool", executor=DockerExecutor(output=io.StringIO()), poll_wait_seconds=0.5
        )
        in_flight = client.create_run(sleepy["id"], {"parameters": {"seconds": 60}})
        running = wait_for_state(client, in_flight["id"], {"RUNNING"} | FINAL, timeout=20)
        assert running["state"] == "RUNNING", running["state_message"]
    finally:
        first.stop()  # the engine goes away, and its containers with it
    lost = wait_for_state(client, in_flight["id"], timeout=20)
    assert lost["state"] == "CRASHED"
    assert "container" in lost["state_message"]

    waiting = client.create_run(greet["id"], {"parameters": {"name": "later"}})
    wait_for(
        lambda: any(
            "given back to the pool" in (s.get("message") or "")
            and "does not answer (Connection refused)" in (s.get("message") or "")
            for s in client.run_states(waiting["id"])
        ),
        20,
        "the run to be given back while the engine is down",
    )
    assert client.get_run(waiting["id"])["state"] not in FINAL
    with DockerEmulator(port=port) as second:
        done = wait_for_state(client, waiting["id"], timeout=30)
        assert done["state"] == "COMPLETED", done["state_message"]
        assert done["result"] == "greeted later"
        assert second.errors == []


def test_worker_start_without_an_engine_says_so_in_one_line(
    client, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_pool(client)
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKER_HOST", nowhere)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    result = cli("worker", "start", "--pool", "docker-pool")
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no Docker engine is reachable" in lines[0]
    assert nowhere in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
