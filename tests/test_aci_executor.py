"""The azure-container-instance:push pool: AciExecutor against the Azure emulator over HTTPS.

tests/emulators/azure runs each container group's container as a local subprocess with the
command and environment the executor submitted, reports its real exit code and keeps its output
for list_logs; Azure's clients are never patched, and every call carries a token Entra (the
emulator) issued to a service principal that holds only "Azure Container Instances Contributor
Role" on the run's resource group (and Managed Identity Operator on the identity). Part (a)
drives the executor directly, part (b) a whole server whose dispatcher starts runs on "ACI".
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from push_pools import pool_types, templates
from push_pools.errors import AuthenticationError, InvalidInput, NotFound, PushPoolsError
from push_pools.executors.aci import checks
from push_pools.executors.aci.executor import AciExecutor
from push_pools.executors.aci.template import POOL_TYPE, default_template
from push_pools.executors.base import InfrastructureState, InfrastructureStatus, Submission
from tests.bundle_helpers import bootstrap_env, stock_python, where_project  # noqa: F401
from tests.conftest import deploy, wait_for_state
from tests.emulators.azure import AzureEmulator, ContainerGroup, Principal

LOCATION = "westeurope"
BLOCK = "aci-principal"
# "python" here and in every command: the emulator maps it to this interpreter.
SLEEP = "python -c 'import time; print(\"started\", flush=True); time.sleep(60)'"
GROUP_PUT = (
    r"^PUT /subscriptions/[^/]+/resourceGroups/[^/]+"
    r"/providers/Microsoft\.ContainerInstance/containerGroups/[^/]+$"
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[AzureEmulator]:
    with AzureEmulator() as azure_emulator:
        azure_emulator.stop_grace_seconds = 1.0
        yield azure_emulator
        assert azure_emulator.errors == []


@pytest.fixture(autouse=True)
def aci_type() -> None:
    """The type as its entry point would register it (the shared venv's metadata may predate
    the entry point; installing the package registers it the same way)."""
    if POOL_TYPE.name not in pool_types.names():
        pool_types.register(POOL_TYPE)


@dataclass
class Azure:
    """A resource group with an identity and a control-plane principal, as the provisioner
    would leave them."""

    emulator: AzureEmulator
    resource_group: str
    principal: Principal
    identity_id: str
    deployment_id: str

    @property
    def subscription(self) -> str:
        return self.emulator.subscription_id

    def block(self) -> dict[str, Any]:
        return {
            "tenant_id": self.principal.tenant_id,
            "client_id": self.principal.client_id,
            "client_secret": self.principal.client_secret,
            "subscription_id": self.subscription,
        }

    def groups(self) -> list[ContainerGroup]:
        return [
            g
            for g in self.emulator.container_groups()
            if g.resource_group.lower() == self.resource_group.lower()
        ]

    def group_of(self, infrastructure_id: str) -> ContainerGroup:
        name = infrastructure_id.rsplit(":", 1)[-1]
        found = self.emulator.container_group(self.resource_group, name)
        assert found is not None, infrastructure_id
        return found


@pytest.fixture
def azure(emulator: AzureEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    resource_group = f"rg-{uuid.uuid4().hex[:8]}"  # one per test: counts of groups stay per test
    emulator.add_resource_group(resource_group, LOCATION)
    identity = emulator.add_identity(resource_group, "flows", LOCATION)
    scope = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{resource_group}"
    principal = emulator.create_service_principal(
        f"push-pools-{resource_group}",
        roles=[
            ("Azure Container Instances Contributor Role", scope),
            ("Managed Identity Operator", identity.id),
        ],
    )
    # The server's own identity, for executors that never saw the run's block.
    for name, value in emulator.env(principal).items():
        monkeypatch.setenv(name, value)
    yield Azure(emulator, resource_group, principal, identity.id, str(uuid.uuid4()))
    emulator.faults.clear()


def owner_block(azure: Azure) -> dict[str, Any]:
    """An azure-credentials block of the subscription's Owner."""
    owner = azure.emulator.owner
    return {
        "tenant_id": owner.tenant_id,
        "client_id": owner.client_id,
        "client_secret": owner.client_secret,
    }


def job_configuration(azure: Azure, **variables: Any) -> dict[str, Any]:
    """The default template rendered the way the dispatcher renders it, block resolved."""
    values = {
        "subscription_id": azure.subscription,
        "resource_group_name": azure.resource_group,
        "identities": [azure.identity_id],
        "aci_credentials": BLOCK,
        **variables,
    }
    return templates.render_job_configuration(
        default_template(),
        values,
        lambda slug, name: azure.block(),
        credential_slots=POOL_TYPE.credential_slots,
        pool_type=POOL_TYPE.name,
    )


def submission(
    azure: Azure, *, engine_env: dict[str, str] | None = None, **variables: Any
) -> Submission:
    run_id = str(uuid.uuid4())
    return Submission(
        flow_run_id=run_id,
        flow_run_name="test-run",
        job_configuration=job_configuration(azure, **variables),
        engine_env=engine_env
        or {"PUSH_POOLS_FLOW_RUN_ID": run_id, "PUSH_POOLS_API_URL": "http://127.0.0.1:9/api"},
        infrastructure_name=f"pp-{run_id}-1",  # as the dispatcher names attempt 1
        pool_name="aci-pool",
        deployment_id=azure.deployment_id,
    )


def wait_status(
    executor: AciExecutor,
    infrastructure_id: str,
    until: Callable[[InfrastructureStatus], bool],
    timeout: float = 60.0,
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


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --------------------------------------------------------------------------- (a) the executor


def test_the_container_runs_the_command_with_job_env_and_engine_env(
    azure: Azure, tmp_path: Path
) -> None:
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys; "
        'open(sys.argv[1], "w").write(json.dumps({"env": dict(os.environ), "argv": sys.argv}))'
    )
    run_id = str(uuid.uuid4())
    engine_env = {
        "PUSH_POOLS_FLOW_RUN_ID": run_id,
        "PUSH_POOLS_API_URL": "http://engine.example/api",
        "PUSH_POOLS_API_KEY": "pprun_sekrit-token",
    }
    sub = submission(
        azure,
        command=f"python -c {shlex.quote(script)} {shlex.quote(str(out))} 'hello world'",
        engine_env=engine_env,
        env={"TEAM": "data-eng", "PUSH_POOLS_API_URL": "http://job-env-loses"},
        labels={"team": "data-eng"},
        cpu=0.5,
        memory=1.5,
    )
    executor = AciExecutor()
    infrastructure_id = executor.submit(sub)
    name = sub.infrastructure_name
    assert infrastructure_id == f"aci:{azure.subscription}:{azure.resource_group}:{name}"
    status = wait_status(executor, infrastructure_id, exited)
    assert (status.exit_code, status.reason) == (0, "exited"), status
    seen = json.loads(out.read_text())
    assert seen["argv"][1:] == [str(out), "hello world"]
    env = {k: v for k, v in seen["env"].items() if k not in ("PATH", "HOME", "LANG")}
    assert env == {
        "TEAM": "data-eng",
        "PUSH_POOLS_API_URL": "http://engine.example/api",  # the engine's wins
        "PUSH_POOLS_API_KEY": "pprun_sekrit-token",
        "PUSH_POOLS_FLOW_RUN_ID": run_id,
        # What the engine reports as its infrastructure id is the id submit returned.
        "PUSH_POOLS_INFRASTRUCTURE_ID": infrastructure_id,
    }
    (group,) = azure.groups()
    assert group.name == name and group.location == LOCATION  # the resource group's
    assert group.restart_policy == "Never"
    (container,) = group.containers
    variables = {v["name"]: v for v in container.properties["environmentVariables"]}
    # The token travels as a secureValue (never returned by a GET), everything else as value.
    assert variables["PUSH_POOLS_API_KEY"] == {
        "name": "PUSH_POOLS_API_KEY",
        "secureValue": "pprun_sekrit-token",
    }
    assert variables["TEAM"] == {"name": "TEAM", "value": "data-eng"}
    assert container.properties["resources"] == {"requests": {"cpu": 0.5, "memoryInGB": 1.5}}
    assert list(group.identity["userAssignedIdentities"]) == [azure.identity_id]
    assert group.tags["push-pools-deployment"] == azure.deployment_id
    assert group.tags["push-pools-flow-run"] == sub.flow_run_id
    assert group.tags["team"] == "data-eng"
    # Nothing of the principal's secret reaches the group.
    assert azure.principal.client_secret not in json.dumps(group.properties)


def test_a_retried_submit_adopts_the_group_instead_of_starting_another(azure: Azure) -> None:
    sub = submission(azure, command=SLEEP)
    executor = AciExecutor()
    first = executor.submit(sub)
    assert executor.submit(sub) == first  # the same executor
    # Another dispatcher, or this one after a restart: it knows nothing but the name.
    assert AciExecutor().submit(sub) == first
    (group,) = azure.groups()
    wait_until(lambda: [r.output for r in group.containers[0].runs] == [["started"]])
    # The next attempt of the same run is a different name: a group of its own.
    retry = replace(sub, infrastructure_name=sub.infrastructure_name[:-1] + "2")
    second = executor.submit(retry)
    assert second != first and len(azure.groups()) == 2
    executor.cancel(first)
    executor.cancel(second)


def test_a_lost_answer_to_the_create_is_retried_as_the_same_group(azure: Azure) -> None:
    executor = AciExecutor()
    # The group is created, then the answer is lost: the SDK sends the same PUT again.
    azure.emulator.faults.add(GROUP_PUT, status=503, after_effect=True)
    infrastructure_id = executor.submit(submission(azure, command="python -c 'print(1)'"))
    puts = [c for c in azure.emulator.calls if c.method == "PUT" and "/containerGroups/" in c.path]
    assert [c.status for c in puts[-2:]] == [503, 200]
    assert wait_status(executor, infrastructure_id, exited).exit_code == 0
    (group,) = azure.groups()
    assert len(group.containers[0].runs) == 1  # one process, not two
    # Throttled reads are retried by the SDK too, within the call.
    azure.emulator.faults.add(r"^GET .*/containerGroups/", status=429, retry_after="0")
    assert executor.status([infrastructure_id])[infrastructure_id].exit_code == 0


def test_a_failing_command_exits_with_its_code_and_last_lines(azure: Azure) -> None:
    sub = submission(
        azure, command='python -c \'print("step 1"); print("bad thing"); raise SystemExit(7)\''
    )
    executor = AciExecutor()
    infrastructure_id = executor.submit(sub)
    status = wait_status(executor, infrastructure_id, exited)
    assert (status.exit_code, status.reason, status.message) == (7, "exited", None)
    assert status.last_lines == ["step 1", "bad thing"]  # read back with list_logs
    assert executor.logs(infrastructure_id, limit=1) == ["bad thing"]
    # A server restarted since submit: handed the run's submission, it uses its block.
    restarted = AciExecutor()
    restarted.remember(infrastructure_id, sub)
    assert restarted.status([infrastructure_id])[infrastructure_id].exit_code == 7
    # Without it, the server's own identity (here: AZURE_CLIENT_ID / _SECRET / _TENANT_ID).
    fallback = AciExecutor()
    assert fallback.status([infrastructure_id])[infrastructure_id].exit_code == 7
    assert fallback.logs(infrastructure_id) == ["step 1", "bad thing"]
    unknown = f"aci:{azure.subscription}:{azure.resource_group}:pp-no-such-group-1"
    assert fallback.status([unknown, "pid:12"]) == {
        unknown: InfrastructureStatus(InfrastructureState.MISSING),
        "pid:12": InfrastructureStatus(InfrastructureState.MISSING),
    }
    # Cleanup deletes the finished group; a second cleanup is harmless.
    executor.cleanup(infrastructure_id)
    assert azure.groups() == []
    executor.cleanup(infrastructure_id)


def test_cancel_stops_the_process_and_deletes_the_group(azure: Azure) -> None:
    executor = AciExecutor()
    infrastructure_id = executor.submit(submission(azure, command=SLEEP))
    wait_status(executor, infrastructure_id, lambda s: s.state == InfrastructureState.RUNNING)
    group = azure.group_of(infrastructure_id)
    (run,) = group.containers[0].runs
    wait_until(lambda: run.output == ["started"])
    executor.cancel(infrastructure_id)
    wait_until(lambda: run.finished)
    assert run.exit_code == 143  # SIGTERM, as Docker reports it
    assert azure.groups() == []
    assert executor.status([infrastructure_id])[infrastructure_id].state == "MISSING"
    executor.cancel(infrastructure_id)  # a second cancel of a deleted group is harmless


def test_an_image_that_cannot_be_pulled_says_so(azure: Azure) -> None:
    image = "flows.azurecr.io/etl:missing"
    azure.emulator.unpullable_images.add(image)
    executor = AciExecutor()
    infrastructure_id = executor.submit(submission(azure, command="true", image=image))
    status = wait_status(executor, infrastructure_id, exited)
    assert status.exit_code is None and status.reason == "start_failed"
    assert f'Failed to pull image "{image}"' in (status.message or "")


def test_a_group_still_pending_at_its_start_deadline_is_reported_with_the_event(
    azure: Azure,
) -> None:
    image = "python:3.12-held"
    azure.emulator.pending_images.add(image)
    try:
        executor = AciExecutor()
        infrastructure_id = executor.submit(
            submission(azure, command=SLEEP, image=image, task_start_timeout_seconds=1)
        )
        assert executor.status([infrastructure_id])[infrastructure_id].state == "STARTING"
        status = wait_status(executor, infrastructure_id, exited, timeout=10)
        assert status.reason == "start_timeout"
        assert "still pending after 1 s" in (status.message or "")
        # Stopped, so it never starts after its run was crashed.
        assert azure.group_of(infrastructure_id).state == "Stopped"
    finally:
        azure.emulator.pending_images.discard(image)
    assert azure.group_of(infrastructure_id).containers[0].runs == []


def test_registry_identity_subnets_and_dns_reach_the_group(azure: Azure) -> None:
    registry = {"registry_url": "flows.azurecr.io", "identity": azure.identity_id}
    azure.emulator.pending_images.add("flows.azurecr.io/etl:1")  # what is sent is what counts
    try:
        executor = AciExecutor()
        infrastructure_id = executor.submit(
            submission(
                azure,
                command="true",
                image="flows.azurecr.io/etl:1",
                identities=[],
                image_registry=registry,
                subnet_ids=[
                    "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/"
                    "virtualNetworks/v/subnets/aci"
                ],
                dns_servers=["10.0.0.4"],
                location="northeurope",
                name="ETL nightly",
            )
        )
        group = azure.group_of(infrastructure_id)
        assert group.name.startswith("etl-nightly-pp-") and group.location == "northeurope"
        assert group.properties["imageRegistryCredentials"] == [
            {"server": "flows.azurecr.io", "identity": azure.identity_id}
        ]
        # ACI pulls with an identity only if the group has it.
        assert list(group.identity["userAssignedIdentities"]) == [azure.identity_id]
        assert group.properties["subnetIds"] == [
            {
                "id": "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/"
                "virtualNetworks/v/subnets/aci"
            }
        ]
        assert group.properties["dnsConfig"] == {"nameServers": ["10.0.0.4"]}
        executor.cancel(infrastructure_id)
    finally:
        azure.emulator.pending_images.discard("flows.azurecr.io/etl:1")


def test_group_names_derive_from_the_run_and_fit_aci() -> None:
    from push_pools.executors.aci.job import AciJob

    config = {"subscription_id": "s", "resource_group_name": "rg"}
    job = AciJob.from_configuration(config)
    name = "pp-0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e-12"
    assert job.group_name(name) == name  # the same run and attempt: the same group
    prefixed = AciJob.from_configuration({**config, "name": "Nightly ETL -- of the Sales team"})
    long_name = prefixed.group_name(name)
    assert long_name.startswith("nightly-etl-of-the-s")  # lowercase, cut to 20
    assert len(long_name) <= 63 and long_name[-1] != "-" and "--" not in long_name
    with pytest.raises(InvalidInput, match="arm_template"):
        AciJob.from_configuration({"arm_template": {}})  # Prefect's worker layout


def test_a_pool_without_subscription_or_resource_group_is_not_ready() -> None:
    reason = pool_types.not_ready_reason(POOL_TYPE.name, {})
    assert reason is not None
    assert "'subscription_id'" in reason and "'resource_group_name'" in reason
    reason = pool_types.not_ready_reason(POOL_TYPE.name, {"aci_credentials": "b"})
    assert reason is not None and "'resource_group_name'" in reason
    assert "'subscription_id'" not in reason  # the block may carry it
    ready = {"subscription_id": "s", "resource_group_name": "rg"}
    assert pool_types.not_ready_reason(POOL_TYPE.name, ready) is None
    assert "beyond ACI's limits" in (
        pool_types.not_ready_reason(POOL_TYPE.name, {**ready, "cpu": 16}) or ""
    )


# --------------------------------------------------------------------------- bad input


def test_cpu_and_memory_beyond_aci_limits_are_refused_before_any_azure_call(
    azure: Azure,
) -> None:
    refused = {
        (5, 1): "cpu 5 is beyond ACI's limits of 0.1 to 4 cores",
        (1, 16.5): "memory 16.5 is beyond ACI's limits of 0.1 to 16 GB",
        (0.05, 1): "cpu 0.05 is beyond",
        (1, 1.25): "memory 1.25 is not a multiple of 0.1 GB",
        ("2", 1): "cpu must be a number of cores",
    }
    for (cpu, memory), words in refused.items():
        with pytest.raises(InvalidInput) as exc:
            checks.validate_job_variables({"cpu": cpu, "memory": memory})
        assert words in exc.value.message, (cpu, memory, exc.value.message)
    for cpu, memory in [(1, 1), (0.5, 1.5), (4, 16), (0.1, 0.1)]:
        checks.validate_job_variables({"cpu": cpu, "memory": memory})
    with pytest.raises(InvalidInput, match="not one ACI takes"):
        checks.validate_job_variables({"env": {"MY-VAR": "x"}})
    # A run whose variables were never checked fails at submit with the same message, before
    # it creates anything.
    azure.emulator.clear_calls()
    with pytest.raises(InvalidInput, match="cpu 8 is beyond"):
        AciExecutor().submit(submission(azure, cpu=8))
    assert azure.emulator.calls == [] and azure.groups() == []


def test_no_credentials_are_named_in_one_line(
    azure: Azure, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", str(tmp_path))  # no az CLI to fall back on
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-az"))
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")  # nothing there
    monkeypatch.setenv("IDENTITY_HEADER", "none")
    sub = submission(azure, command="true")
    no_block = dict(sub.job_configuration, aci_credentials=None)
    with pytest.raises(AuthenticationError) as exc:
        AciExecutor().submit(replace(sub, job_configuration=no_block))
    message = exc.value.message
    assert "\n" not in message
    for words in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "az ad sp"):
        assert words in message, message
    # A secret Entra no longer accepts: the run says so, without the secret.
    wrong = dict(sub.job_configuration, aci_credentials={**azure.block(), "client_secret": "x"})
    with pytest.raises(AuthenticationError) as exc:
        AciExecutor().submit(replace(sub, job_configuration=wrong))
    assert "AZURE_CLIENT_SECRET" in exc.value.message and "\n" not in exc.value.message
    assert azure.groups() == []


def test_an_unknown_subscription_or_resource_group_names_the_variable(azure: Azure) -> None:
    other = str(uuid.uuid4())
    with pytest.raises(NotFound) as exc:
        AciExecutor().submit(submission(azure, subscription_id=other))
    assert other in exc.value.message and "'subscription_id'" in exc.value.message
    assert "--subscription" in exc.value.message
    # ARM checks roles first: to a group-scoped principal a missing group is a 403.
    with pytest.raises(PushPoolsError) as exc:
        AciExecutor().submit(submission(azure, resource_group_name="rg-nowhere"))
    assert "if resource group rg-nowhere does not exist" in exc.value.message
    assert "'resource_group_name'" in exc.value.message
    # To a subscription-wide one, it is missing.
    sub = submission(azure, resource_group_name="rg-nowhere")
    owner = dict(sub.job_configuration, aci_credentials=owner_block(azure))
    with pytest.raises(NotFound) as exc:
        AciExecutor().submit(replace(sub, job_configuration=owner))
    assert "Resource group 'rg-nowhere' could not be found" in exc.value.message
    assert "'resource_group_name'" in exc.value.message


def test_a_missing_permission_names_the_action(azure: Azure) -> None:
    # A resource group of the subscription where the principal holds no role.
    azure.emulator.add_resource_group("rg-not-ours", LOCATION)
    with pytest.raises(PushPoolsError) as exc:
        AciExecutor().submit(
            submission(azure, resource_group_name="rg-not-ours", location=LOCATION)
        )
    assert "Microsoft.ContainerInstance/containerGroups/read" in exc.value.message
    assert "Azure Container Instances Contributor Role" in exc.value.message
    # An identity the principal may not assign: Managed Identity Operator is named.
    stranger = azure.emulator.add_identity(azure.resource_group, "stranger", LOCATION)
    with pytest.raises(PushPoolsError) as exc:
        AciExecutor().submit(submission(azure, command="true", identities=[stranger.id]))
    assert "Managed Identity Operator" in exc.value.message and stranger.id in exc.value.message
    assert azure.groups() == []


def test_an_unregistered_provider_is_registered_without_waiting_ten_seconds(
    azure: Azure,
) -> None:
    emulator = azure.emulator
    emulator.set_provider_registration("Microsoft.ContainerInstance", "NotRegistered")
    try:
        # The group-scoped principal may not register it: one line saying what to run.
        with pytest.raises(PushPoolsError) as exc:
            AciExecutor().submit(submission(azure, command="true"))
        assert "az provider register --namespace Microsoft.ContainerInstance" in (exc.value.message)
        # The owner may: registered at once, then the group is created.
        sub = submission(azure, command="true")
        config = dict(sub.job_configuration, aci_credentials=owner_block(azure))
        started = time.monotonic()
        AciExecutor().submit(replace(sub, job_configuration=config))
        assert time.monotonic() - started < 9  # not azure-mgmt-core's 10 s sleep
        assert len(azure.groups()) == 1
    finally:
        emulator.set_provider_registration("Microsoft.ContainerInstance", "Registered")


# --------------------------------------------------------------------------- (b) a whole server


@pytest.fixture
def aci_pool(client: Any, azure: Azure) -> str:
    client.create_block({"name": BLOCK, "block_type": "azure-credentials", "data": azure.block()})
    template = default_template()
    properties = template["variables"]["properties"]
    defaults = {
        "subscription_id": azure.subscription,
        "resource_group_name": azure.resource_group,
        "identities": [azure.identity_id],
        "aci_credentials": BLOCK,
    }
    for name, value in defaults.items():
        properties[name]["default"] = value
    client.create_work_pool(
        {"name": "aci-pool", "type": POOL_TYPE.name, "base_job_template": template}
    )
    return "aci-pool"


def test_fifty_runs_of_a_deployment_complete_on_aci(
    client: Any, flow_dir: Path, aci_pool: str, azure: Azure
) -> None:
    deployment = deploy(client, flow_dir, "greet", pool=aci_pool)
    runs = [
        client.create_run(deployment["id"], {"parameters": {"name": f"run {i}"}}) for i in range(50)
    ]
    finals = [wait_for_state(client, run["id"], timeout=120) for run in runs]
    assert [f["state"] for f in finals] == ["COMPLETED"] * 50
    assert sorted(f["result"] for f in finals) == sorted(f"greeted run {i}" for i in range(50))
    for final in finals:
        group_name = f"pp-{final['id']}-1"
        assert final["infrastructure_id"] == (
            f"aci:{azure.subscription}:{azure.resource_group}:{group_name}"
        )
    # Finished groups are deleted (keep_container_group is off).
    wait_until(lambda: azure.groups() == [], timeout=60)


def test_a_crashing_flow_is_crashed_with_its_exit_code_and_output(
    client: Any, flow_dir: Path, aci_pool: str, azure: Azure
) -> None:
    deployment = deploy(client, flow_dir, "crash", pool=aci_pool)
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=40)
    assert final["state"] == "CRASHED"
    assert "exited with code 3" in final["state_message"]
    assert "about to die" in final["state_message"]  # the tail from list_logs


def test_cancelling_a_running_run_stops_its_container(
    client: Any, cli: Any, flow_dir: Path, aci_pool: str, azure: Azure
) -> None:
    deployment = deploy(client, flow_dir, "sleepy", pool=aci_pool)
    run = client.create_run(deployment["id"], {"parameters": {"seconds": 60}})
    running = wait_for_state(client, run["id"], {"RUNNING"}, timeout=30)
    group = azure.group_of(running["infrastructure_id"])
    (container_run,) = group.containers[0].runs
    token = container_run.env["PUSH_POOLS_API_KEY"]
    assert token.startswith("pprun_")  # the run's own token, sent as a secure value
    (variable,) = [
        v
        for v in group.containers[0].properties["environmentVariables"]
        if v["name"] == "PUSH_POOLS_API_KEY"
    ]
    assert variable == {"name": "PUSH_POOLS_API_KEY", "secureValue": token}
    assert cli("flow-run", "cancel", run["id"]).exit_code == 0
    assert wait_for_state(client, run["id"], timeout=30)["state"] == "CANCELLED"
    wait_until(lambda: container_run.finished, timeout=30)
    wait_until(lambda: azure.groups() == [], timeout=30)


def test_cpu_or_memory_beyond_limits_are_refused_at_deploy_time(
    client: Any, flow_dir: Path, aci_pool: str, azure: Azure
) -> None:
    for variables, words in [
        ({"cpu": 8}, "cpu 8 is beyond ACI's limits"),
        ({"memory": 32}, "memory 32 is beyond ACI's limits"),
        ({"memory": 1.55}, "not a multiple of 0.1 GB"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            deploy(client, flow_dir, "greet", pool=aci_pool, job_variables=variables)
        assert words in exc.value.message
    assert client.list_deployments() == []
    assert azure.groups() == []


def test_a_bundle_deploy_runs_on_the_stock_image_through_the_bootstrap(
    client: Any,
    aci_pool: str,
    azure: Azure,
    readable_dir: Path,
    stock_python: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    import sys

    from push_pools.deploy.entrypoints import load_flow

    project = where_project(readable_dir, "bundled for ACI")
    deployment = load_flow("flows.py:where", project).deploy(
        "stock",
        aci_pool,
        source_dir=project,
        client=client,
        quiet=True,
        job_variables={"env": bootstrap_env(stock_python), "keep_container_group": True},
    )
    run = client.create_run(deployment.id, {})
    final = wait_for_state(client, run["id"], timeout=120)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"]["marker"] == "bundled for ACI"
    assert final["result"]["push_pools"].startswith(str(stock_python))  # the wheel's copy
    container = azure.group_of(final["infrastructure_id"]).containers[0]
    assert container.image == f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim"
    command = container.command or []
    assert command[:2] == ["python", "-c"] and "/bootstrap" in command[2]
    assert not any("pprun_" in part for part in command)  # the token is a secure env value
