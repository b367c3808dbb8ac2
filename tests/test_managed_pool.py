"""Managed pools: the server runs flows itself, with no worker process."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import deploy, wait_for_state

pytestmark = pytest.mark.store


@pytest.fixture
def managed(client, cli) -> str:
    result = cli("work-pool", "create", "managed-pool", "--type", "managed", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "READY"  # no worker needed: the server submits
    return "managed-pool"


def test_run_completes_with_no_worker(client, flow_dir, managed, cli) -> None:
    deployment = deploy(client, flow_dir, "greet", pool=managed)
    result = cli("deployment", "run", "greet/test", "--param", "name=Managed", "--watch")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "hello Managed" in result.stdout
    runs = client.list_runs(deployment_id=deployment["id"])
    states = client.run_states(runs[0]["id"])
    names = [s["name"] for s in states]
    assert names[:3] == ["Scheduled", "Pending", "Submitted"]
    submitted = states[2]
    assert submitted["details"]["dispatcher"].startswith("dispatcher-")
    assert submitted["details"]["infrastructure_id"].startswith("pp-")
    assert runs[0]["state"] == "COMPLETED" and runs[0]["result"] == "greeted Managed"


def test_job_env_reaches_the_flow(client, flow_dir, managed) -> None:
    deployment = deploy(
        client,
        flow_dir,
        "show_env",
        pool=managed,
        parameters={"key": "TEAM"},
        job_variables={"env": {"TEAM": "data-eng"}},
    )
    run = client.create_run(deployment["id"], {})
    assert wait_for_state(client, run["id"])["result"] == "data-eng"


def test_crashing_flow_is_crashed_with_exit_code(client, flow_dir, managed) -> None:
    deployment = deploy(client, flow_dir, "crash", pool=managed)
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=40)
    assert final["state"] == "CRASHED"
    assert "3" in final["state_message"] and "about to die" in final["state_message"]


def test_timeout_crashes_the_run_with_a_message_that_says_so(client, flow_dir, managed) -> None:
    deployment = deploy(
        client, flow_dir, "sleepy", pool=managed, job_variables={"timeout_seconds": 1}
    )
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 30}})
    final = wait_for_state(client, run["id"], timeout=40)
    assert final["state"] == "CRASHED"
    assert "timeout" in final["state_message"]


def test_cancel_a_running_managed_run(client, flow_dir, managed, cli) -> None:
    deployment = deploy(client, flow_dir, "sleepy", pool=managed)
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 60}})
    running = wait_for_state(client, run["id"], {"RUNNING"}, timeout=30)
    pid = (
        int(running["infrastructure_id"].split(":")[-1])
        if running["infrastructure_id"].startswith("pid:")
        else None
    )
    assert cli("flow-run", "cancel", run["id"]).exit_code == 0
    final = wait_for_state(client, run["id"], timeout=30)
    assert final["state"] == "CANCELLED"
    if pid is not None:
        deadline = time.monotonic() + 15
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "the flow's process still runs"
            time.sleep(0.1)
    assert cli("flow-run", "cancel", run["id"]).exit_code != 0  # already finished


def test_pool_concurrency_limit_holds_runs_in_scheduled(client, flow_dir, managed, cli) -> None:
    cli("work-pool", "set-concurrency-limit", managed, "1")
    deployment = deploy(client, flow_dir, "sleepy", pool=managed)
    first = client.create_run(deployment["id"], {"parameters": {"seconds": 3}})
    second = client.create_run(deployment["id"], {"parameters": {"seconds": 0.1}})
    wait_for_state(client, first["id"], {"RUNNING"}, timeout=30)
    time.sleep(0.5)
    assert client.get_run(second["id"])["state"] == "SCHEDULED"
    assert wait_for_state(client, first["id"], timeout=30)["state"] == "COMPLETED"
    assert wait_for_state(client, second["id"], timeout=30)["state"] == "COMPLETED"


def test_absurd_limits_are_refused_at_deploy_time(client, flow_dir, managed) -> None:
    from push_pools.errors import InvalidInput

    for bad in ({"memory": -5}, {"cpu": 0}, {"timeout_seconds": 10**9}, {"pip_packages": "x"}):
        with pytest.raises(InvalidInput) as exc:
            deploy(client, flow_dir, "greet", pool=managed, job_variables=bad)
        assert next(iter(bad)) in exc.value.message
    assert client.list_deployments() == []


def test_unknown_package_fails_the_run_and_does_not_poison_the_cache(
    client, flow_dir, managed
) -> None:
    bad = deploy(
        client,
        flow_dir,
        "greet",
        name="bad",
        pool=managed,
        job_variables={"pip_packages": ["push-pools-no-such-package-xyz==1.0"]},
    )
    run = client.create_run(bad["id"], {})
    final = wait_for_state(client, run["id"], timeout=120)
    assert final["state"] in ("CRASHED", "FAILED")
    assert "push-pools-no-such-package-xyz" in final["state_message"]
    good = deploy(client, flow_dir, "greet", name="good", pool=managed)
    run = client.create_run(good["id"], {})
    assert wait_for_state(client, run["id"], timeout=60)["state"] == "COMPLETED"


def test_workers_cannot_poll_a_managed_pool(client, managed) -> None:
    from push_pools.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        client.poll(managed, {"worker_name": "w"}, timeout=10)
    assert "managed" in exc.value.message


HOG = "\n@flow\ndef hog() -> int:\n    return len(bytearray(3 * 1024**3))\n"


@pytest.mark.parametrize(
    ("memory", "where"),
    [(30, "in the engine's own start"), (200, "in the flow")],
    ids=["engine-start", "flow"],
)
def test_a_run_over_its_memory_limit_is_crashed_with_one_clear_error(
    client, flow_dir, managed, memory: int, where: str
) -> None:
    with (flow_dir / "flows.py").open("a") as handle:
        handle.write(HOG)
    deployment = deploy(client, flow_dir, "hog", pool=managed, job_variables={"memory": memory})
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=60)
    said = f"the run used more than its memory limit of {memory} MiB"
    assert (final["state"], final["state_message"]) == ("CRASHED", said), where
    logs = client.get_logs(run["id"])
    errors = [line["message"] for line in logs if line["level"] == "ERROR"]
    assert len(errors) == 1 and said in errors[0].splitlines()[0], errors
    others = "\n".join(line["message"] for line in logs if line["level"] != "ERROR")
    assert "Traceback" not in others and "MemoryError" not in others, others
    # Where the flow went over, in the user's own code only.
    assert "push_pools/" not in errors[0].replace(str(flow_dir), "")
    if memory == 200:
        assert "flows.py" in errors[0] and "bytearray" in errors[0]
