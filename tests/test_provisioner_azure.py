"""The Azure provisioner against the ARM emulator: real azure-identity and azure-mgmt-* clients
over HTTPS, nothing patched.

Each test gets a fresh emulator with one subscription, whose Owner service principal is who
provisions (AZURE_CLIENT_ID/SECRET/TENANT_ID), a service principal "server" with no role at
all that the control plane will call Azure as (the --client-id/--tenant-id/--client-secret
flags), and an in-memory credentials-block store standing in for the CLI's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from provisioners.azure.adapter import AzureProvisioner
from provisioners.azure.base import StepIds
from provisioners.azure.build import azure_steps, build_azure_plan
from provisioners.azure.clients import AzureClients
from provisioners.azure.config import ROLES, AzureProvisionConfig, ServicePrincipalSecret
from provisioners.plan import MemoryRecorder, Plan, ProvisioningError, StepStatus
from push_pools.errors import InvalidInput
from push_pools.executors.aci.credentials import credential
from tests.azure_helpers import Blocks, azure_test_env, names, ours_left
from tests.emulators.azure import AzureEmulator
from tests.emulators.azure.entra.models import Principal

POOL = "pool-a"
LOCATION = "westeurope"
BLOCK = f"{POOL}-azure-credentials"
_SAMPLE = AzureProvisionConfig(POOL, "00000000-0000-0000-0000-000000000000", LOCATION)
ALL_STEPS = [s.id for s in azure_steps(_SAMPLE)[0]]
# Steps whose create changes something (the subscription step only reads; the providers are
# registered already in the emulator's subscription).
CREATING_STEPS = [s for s in ALL_STEPS if s not in (StepIds.SUBSCRIPTION, StepIds.PROVIDERS)]


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureEmulator]:
    with AzureEmulator() as running:
        azure_test_env(monkeypatch, running)
        yield running
        assert running.errors == []


class Azure:
    """One test's view of the subscription: plans built the way the CLI builds them."""

    def __init__(self, emulator: AzureEmulator) -> None:
        self.emulator = emulator
        self.server: Principal = emulator.create_service_principal("server")
        self.blocks = Blocks()
        self.recorder = MemoryRecorder()
        self.names = names(emulator, POOL)

    def flags(self) -> dict[str, Any]:
        server = self.server
        return {
            "location": LOCATION,
            "client_id": server.client_id,
            "tenant_id": server.tenant_id,
            "client_secret": server.client_secret,
        }

    def provisioner(self, **values: Any) -> AzureProvisioner:
        return AzureProvisioner(POOL, {**self.flags(), **values}, records=self.recorder.load())

    def plan(self, **values: Any) -> Plan:
        plan: Plan = self.provisioner(**values).plan(self.recorder, credentials=self.blocks)
        return plan

    def failing_plan(self, step: str) -> Plan:
        server = self.server
        secret = ServicePrincipalSecret(
            server.tenant_id, server.client_id, server.client_secret or ""
        )
        config = AzureProvisionConfig(
            POOL, self.emulator.subscription_id, LOCATION, secret=secret, fail_at_step=step
        )
        clients = AzureClients(credential(None), self.emulator.subscription_id)
        return build_azure_plan(
            config, self.recorder, clients=clients, credentials_store=self.blocks
        )

    def ours_left(self) -> list[str]:
        return ours_left(self.emulator, POOL)

    def roles_of(self, principal_id: str) -> list[tuple[str, str]]:
        return sorted(
            (a.role_definition_guid, a.scope) for a in self.emulator.role_assignments(principal_id)
        )


@pytest.fixture
def azure(emulator: AzureEmulator) -> Azure:
    return Azure(emulator)


def container_group(identity: str, location: str = LOCATION) -> Any:
    from azure.mgmt.containerinstance import models

    container = models.Container(
        name="probe",
        image="python:3.12-slim",
        command=["python", "-c", "print('hello from the pool')"],
        resources=models.ResourceRequirements(
            requests=models.ResourceRequests(cpu=1.0, memory_in_gb=1.0)
        ),
    )
    return models.ContainerGroup(
        location=location,
        containers=[container],
        os_type="Linux",
        restart_policy="Never",
        identity=models.ContainerGroupIdentity(
            type="UserAssigned", user_assigned_identities={identity: {}}
        ),
    )


def test_provision_from_an_empty_subscription_grants_the_server_only_what_runs_pools(
    azure: Azure, emulator: AzureEmulator
) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

    provisioner = azure.provisioner()
    who = provisioner.preflight()
    assert who.scope == "subscription" and who.region == LOCATION
    assert emulator.subscription_id in who.account

    plan = provisioner.plan(azure.recorder, credentials=azure.blocks)
    preview = plan.preview()
    assert [s.step_id for s in preview] == ALL_STEPS
    assert {s.status for s in preview if s.step_id in CREATING_STEPS} == {StepStatus.CREATE}
    assert [c for c in emulator.calls if c.mutating] == []  # a preview changes nothing

    outputs = plan.apply()
    rg, identity_name, registry = (
        azure.names.resource_group,
        azure.names.identity,
        azure.names.registry,
    )
    [identity] = emulator.identities()
    group_scope = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{rg}"
    identity_scope = (
        f"{group_scope}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name}"
    )
    registry_scope = f"{group_scope}/providers/Microsoft.ContainerRegistry/registries/{registry}"
    assert sorted(azure.ours_left()) == sorted(
        [
            f"group {rg}",
            f"identity {identity_name}",
            f"registry {registry}",
            f"AcrPull on {registry_scope}",
            f"Azure Container Instances Contributor Role on {group_scope}",
            f"Managed Identity Operator on {identity_scope}",
        ]
    )
    # The server gets exactly two narrow roles; the identity may only pull from the registry.
    assert azure.roles_of(azure.server.object_id) == sorted(
        [(ROLES.ACI_CONTRIBUTOR, group_scope), (ROLES.IDENTITY_OPERATOR, identity_scope)]
    )
    assert azure.roles_of(identity.principal.object_id) == [(ROLES.ACR_PULL, registry_scope)]

    defaults = provisioner.template_defaults(outputs)
    assert defaults == {
        "subscription_id": emulator.subscription_id,
        "resource_group_name": rg,
        "location": LOCATION,
        "identities": [outputs[StepIds.IDENTITY].data["id"]],
        "image_registry": {
            "registry_url": f"{registry}.azurecr.io",
            "identity": outputs[StepIds.IDENTITY].data["id"],
        },
        "aci_credentials": BLOCK,
    }
    assert defaults["identities"][0].lower() == identity_scope.lower()
    # The block holds the server's principal; the records hold no secret.
    stored = azure.blocks.saved[BLOCK]
    assert stored["client_id"] == azure.server.client_id
    assert stored["client_secret"] == azure.server.client_secret
    assert stored["subscription_id"] == emulator.subscription_id
    assert all(azure.server.client_secret not in str(r.data) for r in azure.recorder.load())

    # What the block holds works: the server runs a container group as the pool's identity in
    # the pool's group, and may not do so anywhere else.
    aci = ContainerInstanceManagementClient(
        credential(stored), emulator.subscription_id, **emulator.client_kwargs()
    )
    aci.container_groups.begin_create_or_update(
        rg, "run-1", container_group(identity_scope)
    ).result()
    emulator.wait_until(lambda: emulator.container_group(rg, "run-1") is not None)
    emulator.add_resource_group("elsewhere", LOCATION)
    with pytest.raises(HttpResponseError, match="AuthorizationFailed"):
        aci.container_groups.begin_create_or_update(
            "elsewhere", "run-2", container_group(identity_scope)
        ).result()


def test_a_second_run_makes_no_mutating_call_and_stores_the_secret_once(
    azure: Azure, emulator: AzureEmulator
) -> None:
    azure.plan().apply()
    emulator.clear_calls()
    # As the CLI does for a provisioned pool: no --location, the records say where.
    again = azure.plan(location=None)
    assert {s.status for s in again.preview()} == {StepStatus.EXISTS}
    again.apply()
    assert [str(c) for c in emulator.calls if c.mutating] == []
    assert azure.blocks.saves == 1


def test_a_resource_group_and_registry_made_by_someone_else_are_adopted_and_kept(
    azure: Azure, emulator: AzureEmulator
) -> None:
    rg, registry = azure.names.resource_group, azure.names.registry
    emulator.add_resource_group(rg, LOCATION, tags={"team": "data"})
    emulator.add_registry(rg, registry, LOCATION)
    outputs = azure.plan().apply()
    assert not outputs[StepIds.RESOURCE_GROUP].created
    assert not outputs[StepIds.REGISTRY].created
    assert outputs[StepIds.IDENTITY].created
    # Adopted as is: not tagged as ours.
    [group] = emulator.resource_groups()
    assert group.tags == {"team": "data"}

    azure.plan().teardown()
    assert [g.name for g in emulator.resource_groups()] == [rg]
    assert [r.name for r in emulator.registries()] == [registry]
    assert emulator.identities() == []
    assert azure.ours_left() == []
    assert azure.recorder.load() == []


def test_another_pools_resource_group_is_refused(azure: Azure, emulator: AzureEmulator) -> None:
    emulator.add_resource_group(
        azure.names.resource_group,
        LOCATION,
        tags={"push-pools-pool": "pool-b", "push-pools-managed-by": "push-pools"},
    )
    with pytest.raises(ProvisioningError, match="belongs to push-pools pool 'pool-b'"):
        azure.plan().apply()
    assert [c for c in emulator.calls if c.mutating] == []


@pytest.mark.parametrize("step", CREATING_STEPS)
def test_a_failure_at_each_step_resumes_and_teardown_leaves_nothing(
    azure: Azure, emulator: AzureEmulator, step: str
) -> None:
    with pytest.raises(ProvisioningError) as failed:
        azure.failing_plan(step).apply()
    assert failed.value.step_id == step
    assert step not in {r.step for r in azure.recorder.load()}

    outputs = azure.plan().apply()  # resumes: adopts what the failed run made, as ours
    assert all(outputs[s].created for s in CREATING_STEPS)
    assert len(azure.ours_left()) == 6
    assert len(emulator.role_assignments(azure.server.object_id)) == 2

    azure.plan().teardown()
    assert azure.ours_left() == []
    assert emulator.resource_groups() == []
    assert azure.recorder.load() == []


def test_an_arm_error_names_the_step_and_a_rerun_resumes(
    azure: Azure, emulator: AzureEmulator
) -> None:
    # Answered after the registry was made: the client sees a failure, ARM has the registry.
    emulator.faults.add(
        "PUT .*/registries/", 409, after_effect=True, code="Conflict", message="try again"
    )
    with pytest.raises(ProvisioningError, match="Conflict: try again") as failed:
        azure.plan().apply()
    assert failed.value.step_id == StepIds.REGISTRY
    assert "\n" not in str(failed.value)
    azure.plan().apply()
    assert len(emulator.registries()) == 1
    azure.plan().teardown()
    assert azure.ours_left() == []


def test_teardown_right_after_a_crash_sweeps_what_has_no_record(
    azure: Azure, emulator: AzureEmulator
) -> None:
    with pytest.raises(ProvisioningError):
        azure.failing_plan(StepIds.CONTROL_IDENTITY).apply()
    assert any("Managed Identity Operator" in left for left in azure.ours_left())
    azure.plan().teardown()
    assert azure.ours_left() == []


def test_unregistered_providers_are_registered_and_never_unregistered(
    azure: Azure, emulator: AzureEmulator
) -> None:
    emulator.set_provider_registration("Microsoft.ContainerInstance", "NotRegistered")
    outputs = azure.plan().apply()
    record = outputs[StepIds.PROVIDERS]
    assert record.data["registered_by_push_pools"] == ["Microsoft.ContainerInstance"]
    assert not record.created
    azure.plan().teardown()
    assert not any("unregister" in c.path for c in emulator.calls)


def test_managed_identity_stores_no_secret_and_grants_the_servers_identity(
    azure: Azure, emulator: AzureEmulator
) -> None:
    server = emulator.create_managed_identity_principal("server-vm")
    provisioner = AzureProvisioner(
        POOL,
        {"location": LOCATION, "managed_identity": True, "principal_id": server.object_id},
    )
    outputs = provisioner.plan(azure.recorder, credentials=azure.blocks).apply()
    assert StepIds.CREDENTIALS not in outputs
    assert azure.blocks.saved == {}
    assert provisioner.credentials_block_name() is None
    assert "aci_credentials" not in provisioner.template_defaults(outputs)
    assert {a.role_definition_guid for a in emulator.role_assignments(server.object_id)} == {
        ROLES.ACI_CONTRIBUTOR,
        ROLES.IDENTITY_OPERATOR,
    }


def test_a_pool_stays_where_it_was_provisioned(azure: Azure, emulator: AzureEmulator) -> None:
    azure.plan().apply()
    with pytest.raises(ProvisioningError, match="leave out --subscription/--location"):
        azure.plan(location="northeurope").apply()


def test_no_role_is_broad_or_at_subscription_scope(azure: Azure, emulator: AzureEmulator) -> None:
    azure.plan().apply()
    owner = emulator.owner.object_id
    granted = [a for a in emulator.role_assignments() if a.principal_id != owner]
    assert granted
    broad = {"Owner", "Contributor", "User Access Administrator"}
    by_guid = {d.guid: d.role_name for d in emulator.state.authorization.definitions.values()}
    for assignment in granted:
        assert by_guid[assignment.role_definition_guid] not in broad
        assert assignment.scope.rstrip("/") != f"/subscriptions/{emulator.subscription_id}"
        assert "/resourceGroups/" in assignment.scope


# ---------------------------------------------------------------------- bad input


def test_no_service_principal_is_one_line_naming_the_variables_and_the_az_command(
    azure: Azure, emulator: AzureEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    provisioner = AzureProvisioner(POOL, {"location": LOCATION})
    with pytest.raises(InvalidInput) as refused:
        provisioner.preflight()
    message = str(refused.value)
    assert "\n" not in message
    assert "AZURE_CLIENT_ID" in message and "AZURE_CLIENT_SECRET" in message
    assert "az ad sp create-for-rbac" in message
    assert emulator.calls == []


def test_half_a_service_principal_names_what_is_missing(azure: Azure) -> None:
    with pytest.raises(InvalidInput, match="missing --client-secret"):
        azure.provisioner(client_secret=None)


def test_unknown_subscription_and_location_are_refused(azure: Azure) -> None:
    with pytest.raises(InvalidInput, match="does not exist or the credentials may not see it"):
        azure.provisioner(subscription="11111111-2222-3333-4444-555555555555").preflight()
    with pytest.raises(InvalidInput, match="no location 'moon-1'.*westeurope"):
        azure.provisioner(location="moon-1").preflight()
    with pytest.raises(ProvisioningError, match="no location 'moon-1'"):
        azure.plan(location="moon-1").apply()
    with pytest.raises(InvalidInput, match="pass --location"):
        azure.provisioner(location=None)
    with pytest.raises(InvalidInput, match="not an Azure subscription ID"):
        azure.provisioner(subscription="my-sub")


def test_a_registry_name_taken_by_someone_else_stops_before_any_change(
    azure: Azure, emulator: AzureEmulator
) -> None:
    emulator.reserve_registry_name(azure.names.registry)
    with pytest.raises(InvalidInput, match=f"{azure.names.registry} .* is taken"):
        azure.provisioner().preflight()
    assert [c for c in emulator.calls if c.mutating] == []
    # Without the pre-flight (the API's path) the plan stops at the registry all the same.
    with pytest.raises(ProvisioningError, match="is taken") as failed:
        azure.plan().apply()
    assert failed.value.step_id == StepIds.REGISTRY
    assert [c for c in emulator.calls if c.mutating and "/registries/" in c.path] == []


def test_managed_identity_without_a_principal_id_grants_whoever_provisions(
    azure: Azure, emulator: AzureEmulator
) -> None:
    provisioner = AzureProvisioner(POOL, {"location": LOCATION, "managed_identity": True})
    provisioner.plan(azure.recorder, credentials=azure.blocks).apply()
    granted = {a.role_definition_guid for a in emulator.role_assignments(emulator.owner.object_id)}
    assert {ROLES.ACI_CONTRIBUTOR, ROLES.IDENTITY_OPERATOR} <= granted
    assert azure.blocks.saved == {}
    # A teardown needs no flag at all: the records say whom the roles went to.
    AzureProvisioner(POOL, {}, records=azure.recorder.load()).plan(
        azure.recorder, credentials=azure.blocks
    ).teardown()
    assert azure.ours_left() == []
