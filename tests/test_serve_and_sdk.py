"""Deploying from Python: flow.deploy, flow.serve, Flow.from_source."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC
from pathlib import Path

import pytest

from tests.conftest import wait_for_state

pytestmark = pytest.mark.store


def load(flow_dir: Path, name: str):  # type: ignore[no-untyped-def]
    from push_pools.deploy.entrypoints import load_flow

    return load_flow(f"flows.py:{name}", flow_dir)


def test_flow_deploy_then_run_through_a_worker(
    server, client, flow_dir, worker_factory, capsys
) -> None:
    from push_pools.models import DeploymentOut

    client.create_work_pool({"name": "pool", "type": "process"})
    greet = load(flow_dir, "greet")
    deployment = greet.deploy(
        "sdk", work_pool_name="pool", parameters={"name": "Grace"}, cron="0 2 * * *"
    )
    assert isinstance(deployment, DeploymentOut)
    assert deployment.full_name == "greet/sdk"
    assert deployment.parameter_schema["properties"]["times"]["type"] == "integer"
    # The same summary as the CLI's deploy: where, when next, how to start it.
    printed = capsys.readouterr().out
    assert "Deployment 'greet/sdk' created" in printed
    assert "next runs:" in printed and "02:00" in printed
    assert len(deployment.next_runs) == 3
    assert all(t.astimezone(UTC).hour == 2 for t in deployment.next_runs)
    worker_factory("pool")
    run = client.create_run(deployment.id, {})
    final = wait_for_state(client, run["id"])
    assert final["state"] == "COMPLETED"
    assert final["result"] == "greeted Grace"


def test_flow_serve_runs_its_deployment_without_a_pool(server, client, flow_dir) -> None:
    greet = load(flow_dir, "greet")
    stop = threading.Event()
    from push_pools.deploy.serve import serve_flow

    thread = threading.Thread(
        target=serve_flow, args=(greet, "served"), kwargs={"stop": stop}, daemon=True
    )
    thread.start()
    try:
        import time

        deadline = time.monotonic() + 10
        while True:
            try:
                deployment = client.get_deployment_by_name("greet/served")
                break
            except Exception:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert deployment["work_pool_name"] is None
        run = client.create_run(deployment["id"], {"parameters": {"name": "Linus"}})
        assert wait_for_state(client, run["id"])["result"] == "greeted Linus"
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def git(cwd: Path, *args: str) -> None:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def test_from_source_git_repository_is_cloned_at_run_time(
    server, client, flow_dir, tmp_path, worker_factory
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flows.py").write_text((flow_dir / "flows.py").read_text())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "flows")
    client.create_work_pool({"name": "pool", "type": "process"})
    from push_pools import flow

    # The README's spelling: the decorator itself offers from_source.
    source = flow.from_source(f"file://{repo}", "flows.py:greet")
    deployment = source.deploy("from-git", work_pool_name="pool", quiet=True)
    assert any("git_clone" in next(iter(step)) for step in deployment.pull_steps)
    worker_factory("pool")
    run = client.create_run(deployment.id, {"parameters": {"name": "git"}})
    final = wait_for_state(client, run["id"])
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"] == "greeted git"


def test_from_source_that_cannot_be_cloned(server, tmp_path) -> None:
    from push_pools import Flow
    from push_pools.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        Flow.from_source(f"file://{tmp_path}/missing.git", "flows.py:greet")
    assert "clone" in exc.value.message


def test_calling_a_flow_runs_it_locally(flow_dir) -> None:
    greet = load(flow_dir, "greet")
    assert greet("Ada", 1) == "greeted Ada"
    assert sys.modules  # the call needs no server: PUSH_POOLS_API_URL points nowhere here


def test_stopping_serve_pauses_its_deployment_and_leaves_no_run_waiting(
    server, client, flow_dir
) -> None:
    import os
    import signal
    import time

    script = flow_dir / "serve_it.py"
    script.write_text(
        "from flows import greet\n"
        "if __name__ == '__main__':\n"
        "    greet.serve('local', interval=1)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(flow_dir), *sys.path])}
    serving = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=flow_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not completed_runs(client, "greet/local"):
            assert serving.poll() is None, serving.communicate()
            assert time.monotonic() < deadline, "no run of the served deployment completed"
            time.sleep(0.2)
        serving.send_signal(signal.SIGINT)
        out, err = serving.communicate(timeout=30)
    finally:
        serving.kill()
    assert serving.returncode == 0, err
    assert "Traceback" not in err
    assert "Stopped serving 'greet/local': deployment paused" in out

    deployment = client.get_deployment_by_name("greet/local")
    assert deployment["status"] == "PAUSED"
    assert deployment["next_runs"] == []
    runs = client.list_runs(deployment="greet/local", limit=1000)
    waiting = [r for r in runs if r["state"] in ("SCHEDULED", "LATE", "PENDING", "RUNNING")]
    assert waiting == [], [(r["name"], r["state"]) for r in waiting]


def completed_runs(client, full_name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    from push_pools.errors import NotFound

    try:
        return client.list_runs(deployment=full_name, state=["COMPLETED"])
    except NotFound:
        return []  # not deployed yet
