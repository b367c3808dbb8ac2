"""The ecs:push pool: EcsExecutor against moto over HTTP, with tasks that really run.

tests/emulators/ecs_runner.py runs each ECS task moto stores as a local subprocess, with the
command and environment the executor submitted, and stops the task with the real exit code;
boto3 is never patched. Part (a) drives the executor directly, part (b) a whole server whose
dispatcher starts runs on "ECS".
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from push_pools import templates
from push_pools.errors import AuthenticationError, InvalidInput, PushPoolsError
from push_pools.executors.base import InfrastructureState, InfrastructureStatus, Submission
from push_pools.executors.ecs import template as ecs_template
from push_pools.executors.ecs.executor import EcsExecutor
from push_pools.executors.ecs.job import family_prefix, started_by_for
from tests.conftest import deploy, wait_for_state
from tests.emulators.ecs_runner import EcsRunner
from tests.emulators.moto_server import aws_test_env

REGION = "us-east-1"
# moto accepts any key pair (until a test turns its authentication on).
KEYS = {"aws_access_key_id": "AKIAPUSHPOOLSTEST000", "aws_secret_access_key": "moto-ignores-it"}
# "python" here and in every command: the runner maps it to this interpreter.
SLEEP = "python -c 'import time; print(\"started\", flush=True); time.sleep(60)'"


@pytest.fixture(scope="module")
def runner() -> Iterator[EcsRunner]:
    with EcsRunner(regions=(REGION,), stop_grace_seconds=1.0) as ecs_runner:
        yield ecs_runner
        assert ecs_runner.errors == []


@dataclass
class Aws:
    """What the (someone else's) provisioner would have made: a cluster, a network, a role."""

    endpoint: str
    cluster: str
    subnets: list[str]
    security_groups: list[str]
    execution_role_arn: str
    # One per test: task definition families (account-wide) then differ from test to test.
    deployment_id: str = ""

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint, **KEYS)

    def defaults(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint,
            "region": REGION,
            "cluster": self.cluster,
            "subnets": self.subnets,
            "security_groups": self.security_groups,
            "execution_role_arn": self.execution_role_arn,
        }


@pytest.fixture
def aws(runner: EcsRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Aws:
    aws_test_env(monkeypatch, tmp_path, REGION)
    cluster = f"flows-{uuid.uuid4().hex[:8]}"  # one per test: counts stay per test
    endpoint = runner.endpoint
    partial = Aws(endpoint, cluster, [], [], "")
    ec2, ecs, iam = partial.client("ec2"), partial.client("ecs"), partial.client("iam")
    ecs.create_cluster(clusterName=cluster)
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    groups = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]][:1]
    role = iam.create_role(
        RoleName=f"exec-{cluster}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    return Aws(endpoint, cluster, subnets, groups, role, str(uuid.uuid4()))


def job_configuration(aws: Aws, **variables: Any) -> dict[str, Any]:
    """The default template rendered the way the dispatcher renders it, block resolved."""
    values = {**aws.defaults(), "aws_credentials": "moto-aws", **variables}
    return templates.render_job_configuration(
        ecs_template.default_template(),
        values,
        lambda slug, name: dict(KEYS),
        credential_slots=("aws_credentials",),
        pool_type="ecs:push",
    )


def submission(
    aws: Aws, *, engine_env: dict[str, str] | None = None, **variables: Any
) -> Submission:
    run_id = str(uuid.uuid4())
    return Submission(
        flow_run_id=run_id,
        flow_run_name="test-run",
        job_configuration=job_configuration(aws, **variables),
        engine_env=engine_env
        or {"PUSH_POOLS_FLOW_RUN_ID": run_id, "PUSH_POOLS_API_URL": "http://127.0.0.1:9/api"},
        infrastructure_name=f"pp-{run_id}-1",  # as the dispatcher names attempt 1
        pool_name="ecs-pool",
        deployment_id=aws.deployment_id,
    )


def wait_status(
    executor: EcsExecutor,
    infrastructure_id: str,
    until: Callable[[InfrastructureStatus], bool],
    timeout: float = 20.0,
) -> InfrastructureStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = executor.status([infrastructure_id])[infrastructure_id]
        if until(status):
            return status
        assert time.monotonic() < deadline, f"still {status} after {timeout}s"
        time.sleep(0.05)


def exited(status: InfrastructureStatus) -> bool:
    return status.state == InfrastructureState.EXITED


def tasks_named(aws: Aws, infrastructure_name: str) -> list[str]:
    """ARNs of the tasks started under this infrastructure name, running or stopped."""
    ecs = aws.client("ecs")
    return [
        arn
        for desired in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(
            cluster=aws.cluster,
            startedBy=started_by_for(infrastructure_name),
            desiredStatus=desired,
        )["taskArns"]
    ]


# --------------------------------------------------------------------------- (a) the executor


def test_a_retried_submit_adopts_the_task_instead_of_starting_another(aws: Aws) -> None:
    sub = submission(aws, command=SLEEP)
    first = EcsExecutor().submit(sub)
    assert first == f"ecs:{REGION}:{aws.cluster}:{sub.infrastructure_name}"
    # The same executor, and another one (a second dispatcher, or this one after a restart).
    assert EcsExecutor().submit(sub) == first
    executor = EcsExecutor()
    assert executor.submit(sub) == first
    assert len(started_by_for(sub.infrastructure_name)) <= 36  # ECS's limit
    assert len(tasks_named(aws, sub.infrastructure_name)) == 1
    # The next attempt of the same run is a different name: a task of its own.
    retry = replace(sub, infrastructure_name=sub.infrastructure_name[:-1] + "2")
    assert executor.submit(retry) != first
    assert len(tasks_named(aws, retry.infrastructure_name)) == 1
    executor.cancel(first)
    executor.cancel(executor.submit(retry))


def test_run_task_sends_a_client_token_derived_from_the_infrastructure_name(aws: Aws) -> None:
    """Read on the wire (a botocore hook observes the real request): botocore would otherwise
    send a random token, and a retried submit would not be the same request to ECS."""
    ecs = aws.client("ecs")
    # Not a name containing aws.cluster: moto's list_tasks matches cluster names as substrings.
    other_cluster = f"other-{uuid.uuid4().hex[:8]}"
    ecs.create_cluster(clusterName=other_cluster)
    run_id = str(uuid.uuid4())
    names = [
        f"pp-{run_id}-1",  # the dispatcher's names: sent as they are
        f"pp-{run_id}-1-" + "x" * 40,  # over 64 characters
        "pp-ünïcode run-1",  # characters ECS refuses in a token (and in startedBy)
    ]
    sent: list[tuple[str, str]] = []
    for name in names:
        for cluster in (aws.cluster, other_cluster):
            # A new executor each time: nothing remembered, the token comes from the name.
            executor = EcsExecutor()
            sub = replace(
                submission(aws, command="true", cluster=cluster), infrastructure_name=name
            )

            def record(request: Any, **_: Any) -> None:
                body = json.loads(request.body)
                sent.append((body["clientToken"], body["startedBy"]))

            once = executor.client(sub.job_configuration, retry=False)
            once.meta.events.register("before-send.ecs.RunTask", record)
            executor.submit(sub)
    assert len(sent) == 6
    tokens = [token for token, _ in sent]
    # The same name, from another dispatcher, is the same request (ECS scopes tokens per
    # cluster, so here both clusters start one task each).
    assert tokens[0] == tokens[1] and tokens[2] == tokens[3] and tokens[4] == tokens[5]
    assert tokens[0] == names[0]
    assert len(set(tokens)) == 3  # another name (the run's next attempt): another token
    for token, started_by in sent:
        assert 1 <= len(token) <= 64 and all(33 <= ord(c) <= 126 for c in token), token
        assert re.fullmatch(r"[A-Za-z0-9/_-]{1,36}", started_by), started_by
    for name in names:
        assert len(tasks_named(aws, name)) == 1  # ECS accepted each request


def test_fifty_runs_of_a_deployment_register_one_task_definition(aws: Aws) -> None:
    executor = EcsExecutor()
    subs = [submission(aws, command="true") for _ in range(50)]
    with ThreadPoolExecutor(8) as pool:  # the dispatcher submits from 8 threads too
        ids = list(pool.map(executor.submit, subs))
    assert len(set(ids)) == 50
    ecs = aws.client("ecs")
    tasks = _cluster_tasks(aws)
    assert len(tasks) == 50
    arns = {t["taskDefinitionArn"] for t in tasks}
    assert len(arns) == 1
    family = next(iter(arns)).rsplit("/", 1)[1].split(":")[0]
    prefix = f"{family_prefix('ecs-pool')}{aws.deployment_id[:8]}-"
    assert family.startswith(prefix) and len(family) == len(prefix) + 12
    # A new executor keeps no cache but finds the same revision.
    EcsExecutor().submit(submission(aws, command="true"))
    assert len(ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]) == 1
    # Another image is another family; the deployment's first one stays as it was.
    EcsExecutor().submit(submission(aws, command="true", image="flows:v2"))
    families = ecs.list_task_definition_families(familyPrefix=prefix)
    assert len(families["families"]) == 2


def test_job_env_and_engine_env_reach_the_process_but_not_the_task_definition(
    aws: Aws, runner: EcsRunner, tmp_path: Path
) -> None:
    out = tmp_path / "env.json"
    command = (
        f'python -c \'import json, os, sys; open(sys.argv[1], "w").write(json.dumps(dict('
        f"os.environ)))' {shlex.quote(str(out))}"
    )
    run_id = str(uuid.uuid4())
    engine_env = {
        "PUSH_POOLS_FLOW_RUN_ID": run_id,
        "PUSH_POOLS_API_URL": "http://engine.example/api",
        "PUSH_POOLS_API_KEY": "sekrit-api-key",
    }
    secret_arn = aws.client("secretsmanager").create_secret(
        Name=f"db-{aws.cluster}", SecretString="hunter2"
    )["ARN"]
    sub = submission(
        aws,
        command=command,
        engine_env=engine_env,
        env={"TEAM": "data-eng", "PUSH_POOLS_API_URL": "http://job-env-loses"},
        secrets={"DB_PASSWORD": secret_arn},
    )
    executor = EcsExecutor()
    infrastructure_id = executor.submit(sub)
    status = wait_status(executor, infrastructure_id, exited)
    assert status.exit_code == 0, status
    env = json.loads(out.read_text())
    assert env["TEAM"] == "data-eng"
    assert env["PUSH_POOLS_API_URL"] == "http://engine.example/api"  # the engine's wins
    assert env["PUSH_POOLS_API_KEY"] == "sekrit-api-key"
    assert env["PUSH_POOLS_FLOW_RUN_ID"] == run_id
    # What the engine reports as its infrastructure id is the id submit returned.
    assert env["PUSH_POOLS_INFRASTRUCTURE_ID"] == infrastructure_id
    assert env["DB_PASSWORD"] == "hunter2"  # ECS read the secret when the task started
    assert "PUSH_POOLS_HOME" not in env  # nothing leaks from the test process
    ecs = aws.client("ecs")
    task_arn = tasks_named(aws, sub.infrastructure_name)[0]
    task = ecs.describe_tasks(cluster=aws.cluster, tasks=[task_arn])["tasks"][0]
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
    text = json.dumps(definition["taskDefinition"])
    assert "sekrit-api-key" not in text and "data-eng" not in text and run_id not in text
    assert "hunter2" not in text and secret_arn in text
    container = definition["taskDefinition"]["containerDefinitions"][0]
    assert container["command"][0] == "python"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/push-pools/flow-runs"


def test_an_existing_task_definition_runs_with_our_command_and_env(
    aws: Aws, runner: EcsRunner
) -> None:
    ecs = aws.client("ecs")
    family = f"teams-own-{aws.cluster}"
    arn = ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "sidecar", "image": "envoy", "memory": 128, "essential": False},
            {"name": "app", "image": "team/app:1", "memory": 384, "command": ["false"]},
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    executor = EcsExecutor()
    infrastructure_id = executor.submit(
        submission(
            aws,
            task_definition_arn=arn,
            container_name="app",
            command="python -c 'import os; print(os.environ[\"TEAM\"])'",
            env={"TEAM": "own-definition"},
        )
    )
    status = wait_status(executor, infrastructure_id, exited)
    assert status.exit_code == 0  # our command ran, not the definition's `false`
    handle = _handle(runner, "PUSH_POOLS_INFRASTRUCTURE_ID", infrastructure_id)
    assert handle.output == ["own-definition"]
    # Run as it is: no definition of our own, and theirs is never deregistered.
    assert ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"] == [arn]
    executor.cleanup(infrastructure_id)
    assert ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"] == (
        "ACTIVE"
    )


def register_team_definition(aws: Aws) -> str:
    """Someone else's task definition: two containers, neither named like our default."""
    return str(
        aws.client("ecs").register_task_definition(
            family=f"teams-two-{aws.cluster}",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {"name": "sidecar", "image": "envoy", "memory": 128, "essential": False},
                {"name": "app", "image": "team/app:1", "memory": 384},
            ],
        )["taskDefinition"]["taskDefinitionArn"]
    )


@pytest.mark.parametrize("container_name", ["web", None])  # None: the template's default
def test_a_container_name_the_task_definition_lacks_is_refused_naming_its_containers(
    aws: Aws, runner: EcsRunner, container_name: str | None
) -> None:
    arn = register_team_definition(aws)
    variables = {"container_name": container_name} if container_name else {}
    sub = submission(aws, task_definition_arn=arn, command="true", **variables)
    with pytest.raises(InvalidInput) as exc:
        EcsExecutor().submit(sub)
    wanted = container_name or ecs_template.DEFAULT_CONTAINER_NAME
    assert f"job variable 'container_name' is '{wanted}'" in exc.value.message
    assert arn in exc.value.message
    assert "its containers are 'sidecar', 'app'" in exc.value.message
    # Refused before run_task: no task, so no sidecar ran the flow's command.
    assert tasks_named(aws, sub.infrastructure_name) == []


def test_cleanup_deregisters_only_when_asked(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    ecs = aws.client("ecs")
    executor = EcsExecutor()

    def definition_status(infrastructure_id: str) -> str:
        task = _cluster_task(aws, infrastructure_id)
        described = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
        return str(described["taskDefinition"]["status"])

    kept = executor.submit(submission(aws, command="true"))
    wait_status(executor, kept, exited)
    executor.cleanup(kept)
    assert definition_status(kept) == "ACTIVE"  # the default: the next run reuses it
    dropped = executor.submit(submission(aws, command="true", auto_deregister_task_definition=True))
    wait_status(executor, dropped, exited)
    executor.cleanup(dropped)
    assert definition_status(dropped) == "INACTIVE"
    # A restarted server reads the policy from the task definition's tags.
    again = executor.submit(submission(aws, command="true", auto_deregister_task_definition=True))
    assert (
        _cluster_task(aws, again)["taskDefinitionArn"]
        != _cluster_task(aws, dropped)["taskDefinitionArn"]
    )  # a new revision, as the only one was deregistered
    wait_status(executor, again, exited)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    EcsExecutor().cleanup(again)
    assert definition_status(again) == "INACTIVE"


def test_a_failing_command_exits_with_its_code_and_output(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = submission(aws, command="python -c 'print(\"bad thing\"); raise SystemExit(7)'")
    executor = EcsExecutor()
    infrastructure_id = executor.submit(sub)
    status = wait_status(executor, infrastructure_id, exited)
    assert (status.exit_code, status.reason, status.message) == (7, "exited", None)
    assert status.last_lines == ["bad thing"]  # read back from CloudWatch Logs
    assert executor.logs(infrastructure_id) == ["bad thing"]
    # A server restarted since submit: handed the run's submission, it uses its credentials.
    restarted = EcsExecutor()
    restarted.remember(infrastructure_id, sub)
    assert restarted.status([infrastructure_id])[infrastructure_id].exit_code == 7
    # Without it, the AWS default chain (here: the endpoint and keys in the environment).
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    fallback = EcsExecutor()
    assert fallback.status([infrastructure_id])[infrastructure_id].exit_code == 7
    assert fallback.logs(infrastructure_id, limit=5) == ["bad thing"]
    assert fallback.status(["ecs:us-east-1:nope:pp-x-1", "pid:12"]) == {
        "ecs:us-east-1:nope:pp-x-1": InfrastructureStatus(InfrastructureState.MISSING),
        "pid:12": InfrastructureStatus(InfrastructureState.MISSING),
    }


def test_cancel_stops_the_task_and_its_process(aws: Aws, runner: EcsRunner) -> None:
    executor = EcsExecutor()
    infrastructure_id = executor.submit(submission(aws, command=SLEEP))
    wait_status(executor, infrastructure_id, lambda s: s.state == InfrastructureState.RUNNING)
    handle = _handle(runner, "PUSH_POOLS_INFRASTRUCTURE_ID", infrastructure_id)
    runner.wait_until(lambda: handle.output == ["started"])
    executor.cancel(infrastructure_id)
    status = wait_status(executor, infrastructure_id, exited)
    assert handle.popen is not None and handle.popen.poll() is not None
    assert status.exit_code == 143  # SIGTERM, as Docker reports it
    assert status.reason == "stopped" and "Cancelled by push-pools" in (status.message or "")
    executor.cancel(infrastructure_id)  # a second cancel of a stopped task is harmless


def test_status_describes_150_tasks_in_two_calls(aws: Aws) -> None:
    executor = EcsExecutor()
    subs = [submission(aws, command="true", configure_cloudwatch_logs=False) for _ in range(150)]
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(executor.submit, subs))
    calls: list[str] = []
    client = executor.client(subs[0].job_configuration)
    client.meta.events.register(
        "before-call.ecs.DescribeTasks", lambda **kwargs: calls.append("describe")
    )
    deadline = time.monotonic() + 30
    while True:
        calls.clear()
        statuses = executor.status(ids)
        if all(s.state == InfrastructureState.EXITED for s in statuses.values()):
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert calls == ["describe", "describe"]
    assert {s.exit_code for s in statuses.values()} == {0}


def test_an_image_that_cannot_be_pulled_says_so(aws: Aws, runner: EcsRunner) -> None:
    runner.unpullable_images.add("registry.example/flows:missing")
    executor = EcsExecutor()
    infrastructure_id = executor.submit(
        submission(
            aws,
            command="true",
            image="registry.example/flows:missing",
            launch_type="FARGATE_SPOT",
        )
    )
    status = wait_status(executor, infrastructure_id, exited)
    assert status.exit_code is None and status.reason == "image_pull"
    assert "could not pull the image 'registry.example/flows:missing'" in (status.message or "")
    # FARGATE_SPOT is a capacity provider to ECS, not a launch type.
    assert _cluster_task(aws, infrastructure_id)["capacityProviderName"] == "FARGATE_SPOT"


def test_fargate_sizes_are_checked_before_any_aws_call(aws: Aws) -> None:
    with pytest.raises(InvalidInput) as exc:
        ecs_template.validate_job_variables({"cpu": 256, "memory": 4096})
    assert "cpu 256 with memory 4096 MiB" in exc.value.message
    assert "cpu 256: memory 512, 1024, 2048" in exc.value.message
    assert "cpu 1024: memory 2048-8192 in steps of 1024" in exc.value.message
    ecs_template.validate_job_variables({"cpu": 256, "memory": 4096, "launch_type": "EC2"})
    # A run whose variables were never checked (say, a pool created before this rule) fails
    # at submit with the same message, before it registers or starts anything.
    with pytest.raises(InvalidInput) as exc:
        EcsExecutor().submit(submission(aws, cpu=1024, memory=1024))
    assert "cpu 1024 with memory 1024 MiB" in exc.value.message
    assert aws.client("ecs").list_tasks(cluster=aws.cluster)["taskArns"] == []


def test_credentials_that_no_longer_authenticate_are_named(aws: Aws) -> None:
    _reset_auth(aws.endpoint, "0")  # from now on moto checks keys against its own IAM
    try:
        with pytest.raises(AuthenticationError) as exc:
            EcsExecutor().submit(submission(aws, command="true"))
    finally:
        _reset_auth(aws.endpoint, "inf")
    assert isinstance(exc.value, PushPoolsError)  # the dispatcher crashes the run with it
    assert "no longer authenticate" in exc.value.message


# --------------------------------------------------------------------------- (b) a whole server


@pytest.fixture
def ecs_pool(client: Any, aws: Aws) -> str:
    client.create_block(
        {
            "name": "moto-aws",
            "block_type": "aws-credentials",
            "data": {**KEYS, "region_name": REGION},
        }
    )
    template = ecs_template.default_template()
    properties = template["variables"]["properties"]
    for name, value in {**aws.defaults(), "aws_credentials": "moto-aws"}.items():
        properties[name]["default"] = value
    client.create_work_pool({"name": "ecs-pool", "type": "ecs:push", "base_job_template": template})
    return "ecs-pool"


@pytest.mark.store
def test_a_deployment_runs_to_completion_on_ecs(
    client: Any, cli: Any, flow_dir: Path, ecs_pool: str, aws: Aws
) -> None:
    deployment = deploy(client, flow_dir, "greet", pool=ecs_pool)
    result = cli("deployment", "run", "greet/test", "--param", "name=Fargate", "--watch")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "hello Fargate" in result.stdout
    run = client.list_runs(deployment_id=deployment["id"])[0]
    assert run["state"] == "COMPLETED" and run["result"] == "greeted Fargate"
    states = client.run_states(run["id"])
    assert [s["type"] for s in states] == [
        "SCHEDULED",
        "PENDING",
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]
    assert states[2]["name"] == "Submitted"
    infrastructure_id = states[2]["details"]["infrastructure_id"]
    assert infrastructure_id.startswith(f"ecs:{REGION}:{aws.cluster}:pp-{run['id']}-")
    assert run["infrastructure_id"] == infrastructure_id  # what the engine reported
    logs = cli("flow-run", "logs", run["id"])
    assert "hello Fargate" in logs.stdout
    # What RunTask carried (visible to anyone with ecs:DescribeTasks): the run's own token.
    task = _cluster_task(aws, infrastructure_id)
    env = {e["name"]: e["value"] for e in task["overrides"]["containerOverrides"][0]["environment"]}
    assert env["PUSH_POOLS_API_KEY"].startswith("pprun_")


@pytest.mark.store
def test_job_env_reaches_the_flow(client: Any, flow_dir: Path, ecs_pool: str) -> None:
    deployment = deploy(
        client,
        flow_dir,
        "show_env",
        pool=ecs_pool,
        parameters={"key": "TEAM"},
        job_variables={"env": {"TEAM": "data-eng"}},
    )
    run = client.create_run(deployment["id"], {})
    assert wait_for_state(client, run["id"])["result"] == "data-eng"


@pytest.mark.store
def test_a_crashing_flow_is_crashed_with_its_exit_code_and_output(
    client: Any, flow_dir: Path, ecs_pool: str
) -> None:
    deployment = deploy(client, flow_dir, "crash", pool=ecs_pool)
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=40)
    assert final["state"] == "CRASHED"
    assert "exited with code 3" in final["state_message"]
    assert "about to die" in final["state_message"]  # the tail from CloudWatch Logs


@pytest.mark.store
def test_a_wrong_command_crashes_the_run(client: Any, flow_dir: Path, ecs_pool: str) -> None:
    deployment = deploy(
        client,
        flow_dir,
        "greet",
        pool=ecs_pool,
        job_variables={"command": "python -m push_pools.no_such_engine"},
    )
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=40)
    assert final["state"] == "CRASHED"
    assert "exited with code 1" in final["state_message"]
    assert "No module named push_pools.no_such_engine" in final["state_message"]


@pytest.mark.store
def test_cancelling_a_running_run_stops_its_task(
    client: Any, cli: Any, flow_dir: Path, ecs_pool: str, aws: Aws, runner: EcsRunner
) -> None:
    deployment = deploy(client, flow_dir, "sleepy", pool=ecs_pool)
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 60}})
    wait_for_state(client, run["id"], {"RUNNING"}, timeout=30)
    handle = _handle(runner, "PUSH_POOLS_FLOW_RUN_ID", run["id"])
    assert cli("flow-run", "cancel", run["id"]).exit_code == 0
    assert wait_for_state(client, run["id"], timeout=30)["state"] == "CANCELLED"
    runner.wait_until(lambda: handle.popen is not None and handle.popen.poll() is not None)
    task = aws.client("ecs").describe_tasks(cluster=aws.cluster, tasks=[handle.task_arn])
    assert task["tasks"][0]["stopCode"] == "UserInitiated"


@pytest.mark.store
def test_a_task_that_does_not_start_in_task_start_timeout_seconds_is_crashed_and_stopped(
    client: Any, flow_dir: Path, ecs_pool: str, aws: Aws, runner: EcsRunner
) -> None:
    deployment = deploy(
        client, flow_dir, "greet", pool=ecs_pool, job_variables={"task_start_timeout_seconds": 2}
    )
    runner.provisioning_seconds = 60  # an image pull that never ends
    try:
        run = client.create_run(deployment["id"], {})
        final = wait_for_state(client, run["id"], timeout=30)
    finally:
        runner.provisioning_seconds = 0.0
    assert final["state"] == "CRASHED"
    assert "did not start within its start timeout of 2 s" in final["state_message"]
    task = _cluster_task(aws, final["infrastructure_id"])
    assert task["desiredStatus"] == "STOPPED"  # asked to stop; the runner ends it
    handle = runner.tasks[task["taskArn"]]
    assert handle.popen is None, "the flow's process was started after the deadline"


@pytest.mark.store
def test_invalid_fargate_size_is_refused_at_deploy_time(
    client: Any, flow_dir: Path, ecs_pool: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        deploy(client, flow_dir, "greet", pool=ecs_pool, job_variables={"cpu": 256, "memory": 4096})
    assert "cpu 256: memory 512, 1024, 2048" in exc.value.message
    assert client.list_deployments() == []


@pytest.mark.store
def test_a_container_name_the_task_definition_lacks_crashes_the_run_and_starts_nothing(
    client: Any, flow_dir: Path, ecs_pool: str, aws: Aws
) -> None:
    arn = register_team_definition(aws)
    deployment = deploy(
        client,
        flow_dir,
        "greet",
        pool=ecs_pool,
        job_variables={"task_definition_arn": arn, "container_name": "web"},
    )
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=30)
    assert final["state"] == "CRASHED"
    assert "job variable 'container_name' is 'web'" in final["state_message"]
    assert "its containers are 'sidecar', 'app'" in final["state_message"]
    assert _cluster_tasks(aws) == []


@pytest.mark.store
def test_revoked_credentials_crash_the_run_saying_so(
    client: Any, flow_dir: Path, ecs_pool: str, aws: Aws
) -> None:
    deployment = deploy(client, flow_dir, "greet", pool=ecs_pool)
    _reset_auth(aws.endpoint, "0")
    try:
        run = client.create_run(deployment["id"], {})
        final = wait_for_state(client, run["id"], timeout=30)
    finally:
        _reset_auth(aws.endpoint, "inf")
    assert final["state"] == "CRASHED"
    assert "no longer authenticate" in final["state_message"]


# --------------------------------------------------------------------------- helpers


def _cluster_tasks(aws: Aws) -> list[dict[str, Any]]:
    ecs = aws.client("ecs")
    arns = [
        arn
        for desired in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(cluster=aws.cluster, desiredStatus=desired)["taskArns"]
    ]
    return [
        task
        for start in range(0, len(arns), 100)
        for task in ecs.describe_tasks(cluster=aws.cluster, tasks=arns[start : start + 100])[
            "tasks"
        ]
    ]


def _cluster_task(aws: Aws, infrastructure_id: str) -> dict[str, Any]:
    arn = tasks_named(aws, infrastructure_id.rsplit(":", 1)[-1])[0]
    return dict(aws.client("ecs").describe_tasks(cluster=aws.cluster, tasks=[arn])["tasks"][0])


def _handle(runner: EcsRunner, variable: str, value: str) -> Any:
    """The runner's process of the task whose environment has variable=value."""
    runner.wait_until(
        lambda: any(h.env.get(variable) == value for h in list(runner.tasks.values()))
    )
    return next(h for h in list(runner.tasks.values()) if h.env.get(variable) == value)


def _reset_auth(endpoint: str, count: str) -> None:
    """moto checks credentials after `count` more requests ("inf": never, its default)."""
    import urllib.request

    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        # Not form-encoded (urllib's default), or moto reads an empty body.
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()
