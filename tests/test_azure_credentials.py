"""Azure sign-in as the executor and the provisioner do it, against the ARM emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from push_pools.errors import InvalidInput
from push_pools.executors.aci.credentials import client_kwargs, credential
from tests.emulators.azure import AzureEmulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[AzureEmulator]:
    with AzureEmulator() as running:
        yield running


@pytest.fixture
def azure_env(emulator: AzureEmulator, monkeypatch: pytest.MonkeyPatch) -> AzureEmulator:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    return emulator


def resource_groups(cred: object, subscription: str) -> list[str]:
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = ResourceManagementClient(cred, subscription, **client_kwargs())
    return [group.name for group in client.resource_groups.list()]


def test_a_block_service_principal_signs_in_to_the_configured_endpoint(
    azure_env: AzureEmulator,
) -> None:
    owner = azure_env.owner
    block = {
        "tenant_id": owner.tenant_id,
        "client_id": owner.client_id,
        "client_secret": owner.client_secret,
    }
    assert isinstance(resource_groups(credential(block), azure_env.subscription_id), list)


def test_without_a_block_the_environment_principal_signs_in(azure_env: AzureEmulator) -> None:
    assert isinstance(resource_groups(credential(None), azure_env.subscription_id), list)


def test_a_block_with_half_a_principal_names_what_is_missing(azure_env: AzureEmulator) -> None:
    with pytest.raises(InvalidInput, match="lacks client_secret"):
        credential({"tenant_id": "t", "client_id": "c"})
