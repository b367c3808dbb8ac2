"""Deleting a pool or a deployment never abandons work (through the real server and CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import deploy, wait_for_state

pytestmark = pytest.mark.store

CLI = [sys.executable, "-m", "push_pools.cli.main"]


def assert_clean_error(result, *needles: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


# --- confirmation and refusals: nothing changes ------------------------------------------------


def test_delete_without_terminal_or_yes_is_refused_and_changes_nothing(
    client, cli, flow_dir
) -> None:
    cli("work-pool", "create", "pool", "--type", "process")
    deploy(client, flow_dir, "greet")

    assert_clean_error(cli("work-pool", "delete", "pool", "--force"), "pass --yes")
    assert_clean_error(cli("deployment", "delete", "greet/test"), "pass --yes")
    assert [p["name"] for p in cli("work-pool", "ls", "--json").json()] == ["pool"]
    deployment = client.get_deployment_by_name("greet/test")
    assert deployment["paused"] is False and deployment["work_pool_deleted"] is False

    # Unknown names and a malformed deployment name: one clear line each, nothing deleted.
    assert_clean_error(cli("work-pool", "delete", "nope", "--yes"), "work pool 'nope' not found")
    assert_clean_error(cli("deployment", "delete", "greet/nope", "--yes"), "not found")
    assert_clean_error(cli("deployment", "delete", "no-slash", "--yes"), "flow-name/deployment")
    assert [d["full_name"] for d in client.list_deployments()] == ["greet/test"]


def test_empty_pool_is_deleted_and_its_name_reused(client, cli) -> None:
    cli("work-pool", "create", "pool", "--type", "process")
    deleted = cli("work-pool", "delete", "pool", "--yes", "--json")
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.json() == {
        "name": "pool",
        "deleted": True,
        "paused_deployments": [],
        "cancelled_runs": [],
        "deleted_runs": 0,
    }
    assert cli("work-pool", "ls", "--json").json() == []
    assert_clean_error(cli("work-pool", "inspect", "pool"), "work pool 'pool' was deleted")
    assert cli("work-pool", "create", "pool", "--type", "process").exit_code == 0
    assert cli("work-pool", "inspect", "pool", "--json").json()["status"] == "NOT_READY"


# --- a process pool with a live worker and a running run ----------------------------------------


def test_pool_delete_with_live_worker_and_running_run(
    client, cli, server, home, flow_dir, tmp_path
) -> None:
    cli("work-pool", "create", "pool", "--type", "process")
    deployment = deploy(client, flow_dir, "sleepy", schedules=[{"cron": "* * * * *"}])
    env = {**os.environ, "PUSH_POOLS_API_URL": server.api_url, "PUSH_POOLS_HOME": str(home)}
    output = tmp_path / "worker.out"
    with output.open("w") as sink:
        worker = subprocess.Popen(
            [*CLI, "worker", "start", "--pool", "pool"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            stdin=subprocess.DEVNULL,
        )
    try:
        run = client.create_run(deployment["id"], {"parameters": {"seconds": 120}})
        wait_for_state(client, run["id"], {"RUNNING"}, timeout=60)

        # Without --force: refused, naming what is in the way and the flag; nothing changes.
        refused = cli("work-pool", "delete", "pool", "--yes")
        assert_clean_error(refused, "1 deployment", "unfinished run", "--force")
        assert client.get_work_pool("pool")["status"] == "READY"
        assert client.get_run(run["id"])["state"] == "RUNNING"
        assert client.get_deployment(deployment["id"])["paused"] is False
        assert worker.poll() is None

        forced = cli("work-pool", "delete", "pool", "--force", "--yes", "--json")
        assert forced.exit_code == 0, forced.stderr
        outcome = forced.json()
        assert outcome["paused_deployments"] == ["sleepy/test"]
        assert run["id"] in outcome["cancelled_runs"]

        # The worker stops the run, reports it, and exits non-zero with one line.
        final = wait_for_state(client, run["id"], timeout=60)
        assert final["state"] == "CANCELLED", final["state_message"]
        assert worker.wait(timeout=60) == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
    errors = output.read_text()
    assert "work pool 'pool' was deleted; stopping" in errors
    assert "Traceback" not in errors

    # Its deployment keeps the pool's name, paused, with no runs left waiting; it cannot be
    # resumed or run until it is deployed to a pool again.
    kept = client.get_deployment(deployment["id"])
    assert kept["work_pool_name"] == "pool" and kept["work_pool_deleted"] is True
    assert kept["paused"] is True
    waiting = client.list_runs(deployment_id=deployment["id"], state=["SCHEDULED", "LATE"])
    assert waiting == []
    listed = cli("deployment", "ls")
    assert "pool (deleted)" in listed.stdout and "(served)" not in listed.stdout
    assert_clean_error(cli("deployment", "resume", "sleepy/test"), "'pool' was deleted")
    assert_clean_error(cli("deployment", "run", "sleepy/test"), "'pool' was deleted")

    # The name is free again, and redeploying there makes the deployment runnable.
    cli("work-pool", "create", "pool", "--type", "process")
    redeployed = deploy(client, flow_dir, "sleepy")
    assert redeployed["work_pool_deleted"] is False and redeployed["paused"] is False


# --- deployment delete with a run in flight -----------------------------------------------------


def test_deployment_delete_with_a_run_in_flight(client, cli, flow_dir, worker_factory) -> None:
    cli("work-pool", "create", "pool", "--type", "process")
    deployment = deploy(client, flow_dir, "sleepy")
    worker_factory("pool")
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 120}})
    later = client.create_run(deployment["id"], {"scheduled_time": "2999-01-01T00:00:00+00:00"})
    wait_for_state(client, run["id"], {"RUNNING"}, timeout=60)

    refused = cli("deployment", "delete", "sleepy/test", "--yes")
    assert_clean_error(refused, "1 run in flight", "--force")
    assert client.get_run(run["id"])["state"] == "RUNNING"
    assert client.get_run(later["id"])["state"] == "SCHEDULED"

    forced = cli("deployment", "delete", "sleepy/test", "--yes", "--force", "--json")
    assert forced.exit_code == 0, forced.stderr
    assert forced.json()["cancelled_runs"] == [run["id"]]
    assert forced.json()["deleted_runs"] == 1
    assert wait_for_state(client, run["id"], timeout=60)["state"] == "CANCELLED"
    assert client.list_deployments() == []


# --- a managed (push) pool: the dispatcher stops and cleans up ----------------------------------


def test_forced_delete_of_managed_pool_stops_and_cleans_up_its_run(
    client, cli, flow_dir, home
) -> None:
    cli("work-pool", "create", "managed-pool", "--type", "managed")
    deployment = deploy(client, flow_dir, "sleepy", pool="managed-pool")
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 120}})
    running = wait_for_state(client, run["id"], {"RUNNING"}, timeout=60)
    sandbox = home / "managed" / "runs" / running["infrastructure_id"]
    assert sandbox.is_dir()

    assert_clean_error(cli("work-pool", "delete", "managed-pool", "--yes"), "--force")
    assert client.get_run(run["id"])["state"] == "RUNNING"

    assert cli("work-pool", "delete", "managed-pool", "--yes", "--force").exit_code == 0
    final = wait_for_state(client, run["id"], timeout=60)
    assert final["state"] == "CANCELLED", final["state_message"]
    wait_until(lambda: not sandbox.exists(), 60, "the deleted pool's sandbox was never removed")
    assert cli("work-pool", "ls", "--json").json() == []
