"""The ecs:push pool at scale, against moto whose tasks really run (tests/emulators/ecs_runner.py).

1. Many runs of one deployment, due now, all complete on "ECS" and share ONE task definition
   revision. PUSH_POOLS_ECS_SCALE_RUNS=100 runs the full hundred by hand (default below).
2. A server process killed with SIGKILL inside RunTask (after moto created the task, before
   the answer reached the server) and started again on the same store: every run has exactly
   one ECS task and completes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from push_pools.client import Client
from push_pools.embedded import free_port
from push_pools.executors.ecs import template as ecs_template
from push_pools.executors.ecs.job import family_prefix, started_by_for
from tests.conftest import deploy
from tests.dispatch_helpers import ServerProcess, server_env
from tests.emulators.ecs_runner import EcsRunner
from tests.emulators.moto_server import aws_test_env

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "AKIAPUSHPOOLSTEST000", "aws_secret_access_key": "moto-ignores-it"}
POOL = "ecs-pool"
# 100 took about 19 s on 2 loaded cores (2026-11-24); set lower for a slower machine.
SCALE_RUNS = int(os.environ.get("PUSH_POOLS_ECS_SCALE_RUNS", "100"))
CRASH_RUNS = 16
TRIVIAL_FLOW = (
    "from push_pools import flow\n\n\n@flow\ndef trivial(i: int = 0) -> int:\n    return i\n"
)
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = pytest.mark.store


@pytest.fixture(scope="module")
def runner() -> Iterator[EcsRunner]:
    with EcsRunner(regions=(REGION,), stop_grace_seconds=1.0) as ecs_runner:
        yield ecs_runner
        assert ecs_runner.errors == []


class Aws:
    """A cluster, the default VPC's subnets and an execution role, one cluster per test."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.cluster = f"scale-{uuid.uuid4().hex[:8]}"
        ec2, ecs, iam = self.client("ec2"), self.client("ecs"), self.client("iam")
        ecs.create_cluster(clusterName=self.cluster)
        self.subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
        self.groups = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]][:1]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        self.role = iam.create_role(
            RoleName=f"exec-{self.cluster}", AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint, **KEYS)

    def defaults(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint,
            "region": REGION,
            "cluster": self.cluster,
            "subnets": self.subnets,
            "security_groups": self.groups,
            "execution_role_arn": self.role,
            "aws_credentials": "moto-aws",
        }

    def tasks_of(self, run_id: str) -> list[str]:
        """ARNs of every task started for attempt 1 of the run, running or stopped."""
        ecs = self.client("ecs")
        return [
            arn
            for desired in ("RUNNING", "STOPPED")
            for arn in ecs.list_tasks(
                cluster=self.cluster,
                startedBy=started_by_for(f"pp-{run_id}-1"),
                desiredStatus=desired,
            )["taskArns"]
        ]


@pytest.fixture
def aws(runner: EcsRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Aws:
    aws_test_env(monkeypatch, tmp_path, REGION)
    return Aws(runner.endpoint)


def make_pool(client: Client, aws: Aws) -> None:
    client.create_block(
        {
            "name": "moto-aws",
            "block_type": "aws-credentials",
            "data": {**KEYS, "region_name": REGION},
        }
    )
    template = ecs_template.default_template()
    properties = template["variables"]["properties"]
    for name, value in aws.defaults().items():
        properties[name]["default"] = value
    client.create_work_pool({"name": POOL, "type": "ecs:push", "base_job_template": template})


def trivial_deployment(client: Client, tmp_path: Path) -> dict[str, Any]:
    flow_dir = tmp_path / "trivial"
    flow_dir.mkdir()
    (flow_dir / "flows.py").write_text(TRIVIAL_FLOW)
    return deploy(client, flow_dir, "trivial", pool=POOL)


def create_due_runs(client: Client, deployment_id: str, count: int) -> list[str]:
    now = datetime.now(UTC).isoformat()
    return [
        client.create_run(deployment_id, {"parameters": {"i": i}, "scheduled_time": now})["id"]
        for i in range(count)
    ]


def wait_all_final(client: Client, run_ids: list[str], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    final: dict[str, dict[str, Any]] = {}
    while True:
        for run_id in run_ids:
            if run_id not in final:
                run = client.get_run(run_id)
                if run["state"] in FINAL:
                    final[run_id] = run
        if len(final) == len(run_ids):
            return final
        if time.monotonic() > deadline:
            left = Counter(client.get_run(r)["state"] for r in run_ids if r not in final)
            raise AssertionError(f"{len(final)}/{len(run_ids)} final after {timeout}s: {left}")
        time.sleep(0.25)


def runner_tasks_by_run(runner: EcsRunner, run_ids: list[str]) -> Counter[str]:
    """How many processes the runner started per run (the harness's record of tasks)."""
    wanted = set(run_ids)
    return Counter(
        h.env["PUSH_POOLS_FLOW_RUN_ID"]
        for h in list(runner.tasks.values())
        if h.env.get("PUSH_POOLS_FLOW_RUN_ID") in wanted
    )


def test_many_due_runs_of_one_deployment_complete_with_one_task_definition(
    client: Client, aws: Aws, runner: EcsRunner, tmp_path: Path
) -> None:
    make_pool(client, aws)
    deployment = trivial_deployment(client, tmp_path)
    started = time.monotonic()
    run_ids = create_due_runs(client, deployment["id"], SCALE_RUNS)
    final = wait_all_final(client, run_ids, timeout=max(60.0, SCALE_RUNS * 1.2))
    elapsed = time.monotonic() - started
    print(f"{SCALE_RUNS} ecs:push runs created -> all final in {elapsed:.1f} s")
    bad = {r: (f["state"], f.get("state_message")) for r, f in final.items()}
    bad = {r: v for r, v in bad.items() if v[0] != "COMPLETED"}
    assert bad == {}
    assert sorted(f["result"] for f in final.values()) == list(range(SCALE_RUNS))
    ecs = aws.client("ecs")
    prefix = f"{family_prefix(POOL)}{deployment['id'][:8]}-"
    families = ecs.list_task_definition_families(familyPrefix=prefix)["families"]
    assert len(families) == 1, families
    revisions = ecs.list_task_definitions(familyPrefix=families[0])["taskDefinitionArns"]
    assert len(revisions) == 1, revisions
    per_run = runner_tasks_by_run(runner, run_ids)
    assert set(per_run) == set(run_ids) and set(per_run.values()) == {1}


KILL_RUNS = 12


@pytest.mark.parametrize(
    ("provisioning_seconds", "lease_seconds"),
    [
        # Tasks start at once: their engines reconnect and report Running (with the task's
        # infrastructure id) before the restarted server would take the claims over (lease
        # 4 s); the server watches those tasks from what the engines reported.
        (0.0, 4.0),
        # Tasks start late: the runs are still Pending when the claims are taken over (lease
        # 2 s), so the restarted server submits them again and the executor adopts the tasks.
        (6.0, 2.0),
    ],
    ids=["engines-started", "tasks-provisioning"],
)
def test_a_server_killed_inside_run_task_and_restarted_starts_no_second_task(
    aws: Aws,
    runner: EcsRunner,
    database_url: str,
    home: Path,
    tmp_path: Path,
    provisioning_seconds: float,
    lease_seconds: float,
) -> None:
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    # Claims the killed server left are taken over seconds after they were made, not 30.
    env = server_env(home, port, database_url, lease_seconds)
    log = tmp_path / "server.log"
    first, second = ServerProcess(port, env, log), ServerProcess(port, env, log)
    run_task_calls: list[list[str]] = []

    def kill_the_server_inside_the_third_run_task(task_arns: list[str]) -> None:
        run_task_calls.append(task_arns)
        if len(run_task_calls) == 3:
            first.kill()  # SIGKILL: the task exists in ECS; the server never hears of it

    try:
        first.start()
        with Client(api_url) as client:
            make_pool(client, aws)
            deployment = trivial_deployment(client, tmp_path)
            # Paused while the runs are made, so that the kill cannot interrupt making them.
            client.update_work_pool(POOL, {"paused": True})
            run_ids = create_due_runs(client, deployment["id"], KILL_RUNS)
            runner.after_run_task = kill_the_server_inside_the_third_run_task
            runner.provisioning_seconds = provisioning_seconds
            client.update_work_pool(POOL, {"paused": False})
        deadline = time.monotonic() + 60
        while first.process is None or first.process.poll() is None:
            assert time.monotonic() < deadline, f"no third RunTask:\n{first.log_tail()}"
            time.sleep(0.05)
        runner.after_run_task = None
        started_by_first = {run_id for run_id in run_ids if aws.tasks_of(run_id)}
        assert started_by_first, "the server died before any task was started"

        second.start()
        with Client(api_url) as client:
            final = wait_all_final(client, run_ids, timeout=120)
            histories = {run_id: client.run_states(run_id) for run_id in run_ids}
    finally:
        runner.after_run_task = None
        runner.provisioning_seconds = 0.0
        first.kill()
        second.kill()

    bad = {r: (f["state"], f.get("state_message")) for r, f in final.items()}
    assert {r: v for r, v in bad.items() if v[0] != "COMPLETED"} == {}, second.log_tail()
    assert sorted(f["result"] for f in final.values()) == list(range(KILL_RUNS))
    unwatched = [r for r, f in final.items() if not f["infrastructure_id"]]
    assert unwatched == [], "runs whose task the server never learned of (nobody watched it)"
    per_run = {run_id: aws.tasks_of(run_id) for run_id in run_ids}
    assert {r: len(t) for r, t in per_run.items() if len(t) != 1} == {}
    by_runner = runner_tasks_by_run(runner, run_ids)
    assert set(by_runner) == set(run_ids) and set(by_runner.values()) == {1}
    for run_id, states in histories.items():
        names = [s["name"] for s in states]
        assert names.count("Submitted") <= 1 and names.count("Running") == 1, (run_id, names)
    print(
        f"\nkilled inside RunTask #3 with {len(started_by_first)} of {KILL_RUNS} tasks started; "
        "after the restart every run completed on exactly one task"
    )
