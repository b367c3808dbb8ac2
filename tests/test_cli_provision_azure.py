"""`--provision-infra` for `azure-container-instance:push` pools through the CLI: the ARM
emulator plays Azure, the embedded server plays us."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.azure_helpers import azure_test_env, ours_left
from tests.conftest import deploy, wait_for_state
from tests.emulators.azure import AzureEmulator

pytestmark = pytest.mark.store

POOL_TYPE = "azure-container-instance:push"
LOCATION = "westeurope"


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureEmulator]:
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


def test_a_provisioned_pool_runs_a_deployment_as_the_least_privileged_server_principal(
    server, cli, client, emulator, flow_dir
) -> None:
    # The server's own principal starts with no role at all: what it can do, it got from the
    # provisioning (ACI on the pool's group, the identity's operator), and that must suffice.
    server_principal = emulator.create_service_principal("push-pools-server")
    result = create(
        cli, "--yes",
        "--client-id", server_principal.client_id,
        "--tenant-id", server_principal.tenant_id,
        "--client-secret", server_principal.client_secret or "",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert client.get_work_pool("aci-pool")["status"] == "READY"

    deployment = deploy(client, flow_dir, "greet", pool="aci-pool")
    run = client.create_run(deployment["id"], {"parameters": {"name": "Azure"}})
    final = wait_for_state(client, run["id"], timeout=120)
    assert final["state"] == "COMPLETED", final["state_message"]
    assert final["result"] == "greeted Azure"
    assert final["infrastructure_id"].startswith(f"aci:{emulator.subscription_id}:push-pools-")
