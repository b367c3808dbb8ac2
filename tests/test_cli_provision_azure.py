"""`--provision-infra` for `azure-container-instance:push` pools through the CLI: the ARM
emulator plays Azure, the embedded server plays us."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from push_pools import pool_types
from tests.azure_helpers import azure_test_env, ours_left
from tests.emulators.azure import AzureEmulator

pytestmark = pytest.mark.store

POOL_TYPE = "azure-container-instance:push"
LOCATION = "westeurope"
# The variables the provisioner fills (the executor's template has these and more).
_FILLED = (
    "subscription_id",
    "resource_group_name",
    "location",
    "identities",
    "image_registry",
    "aci_credentials",
)


def _stand_in_template() -> dict[str, Any]:
    return {
        "job_configuration": {name: "{{ " + name + " }}" for name in _FILLED},
        "variables": {"type": "object", "properties": {name: {} for name in _FILLED}},
    }


@pytest.fixture
def aci_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ACI type, or a stand-in with the variables the provisioner fills where the
    executor is not built yet."""
    if POOL_TYPE in pool_types.names():
        return
    monkeypatch.setattr(pool_types, "_REGISTRY", dict(pool_types._REGISTRY))
    pool_types.register(
        pool_types.PoolType(
            name=POOL_TYPE,
            description="Stand-in for the ACI type (tests only).",
            default_template=_stand_in_template,
            executor="push_pools.executors.base:BaseExecutor",
            is_push=True,
            credential_slots=("aci_credentials",),
        )
    )


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch, aci_type: None) -> Iterator[AzureEmulator]:
    with AzureEmulator() as running:
        azure_test_env(monkeypatch, running)
        yield running
        assert running.errors == []


def create(cli: Any, *flags: str, name: str = "aci-pool") -> Any:
    return cli(
        "work-pool", "create", name, "--type", POOL_TYPE, "--provision-infra",
        "--location", LOCATION, *flags,
    )  # fmt: skip


def defaults(pool: dict[str, Any]) -> dict[str, Any]:
    properties = pool["base_job_template"]["variables"]["properties"]
    return {k: v.get("default") for k, v in properties.items()}


def test_dry_run_provision_again_and_deprovision(server, cli, client, emulator) -> None:
    dry = create(cli, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    plan = dry.json()
    assert plan["cloud"] == "azure" and plan["region"] == LOCATION
    assert [c for c in emulator.calls if c.mutating] == []

    result = create(cli, "--yes")
    assert result.exit_code == 0, result.stderr
    assert "Infrastructure successfully provisioned!" in result.stdout
    pool = defaults(client.get_work_pool("aci-pool"))
    assert pool["subscription_id"] == emulator.subscription_id
    assert pool["resource_group_name"] == "push-pools-aci-pool"
    assert pool["location"] == LOCATION
    assert pool["image_registry"]["registry_url"].endswith(".azurecr.io")
    assert pool["aci_credentials"] == "aci-pool-azure-credentials"
    block = cli("block", "inspect", "aci-pool-azure-credentials", "--json").json()
    assert block["block_type"] == "azure-credentials"
    assert block["data"]["client_secret"] == "********"

    emulator.clear_calls()
    again = cli("work-pool", "provision-infra", "aci-pool", "--yes", "--json")
    assert again.exit_code == 0, again.stderr
    assert [c for c in emulator.calls if c.mutating] == []

    removed = cli("work-pool", "delete", "aci-pool", "--yes", "--deprovision-infra")
    assert removed.exit_code == 0, removed.stderr
    assert ours_left(emulator, "aci-pool") == []
    assert cli("block", "inspect", "aci-pool-azure-credentials").exit_code != 0


def test_no_service_principal_is_one_line(
    server, cli, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    result = create(cli, "--yes")
    assert result.exit_code == 1
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "AZURE_CLIENT_SECRET" in error[0] and "az ad sp create-for-rbac" in error[0]
    assert [c for c in emulator.calls if c.mutating] == []


def test_unknown_location_is_one_line_listing_the_subscriptions_own(server, cli, emulator) -> None:
    result = cli(
        "work-pool", "create", "aci-pool", "--type", POOL_TYPE, "--provision-infra",
        "--location", "moon-1", "--yes",
    )  # fmt: skip
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert message.startswith(
        f"Error: subscription {emulator.subscription_id} has no location 'moon-1'; pass "
        "--location with one of:"
    )
    assert "westeurope" in message
    human = create(cli, "--dry-run")
    assert human.exit_code == 0, human.stderr
    assert "Dry run: nothing was changed." in human.stdout
