"""What Azure provisioning tests share: the environment pointing at the emulator, the CLI's
credentials-block store in memory, and a view of what of a pool exists in the subscription."""

from __future__ import annotations

from typing import Any

import pytest

from provisioners.azure.config import ROLES, AzureNames
from tests.emulators.azure import AzureEmulator

ROLE_NAMES = {
    ROLES.ACR_PULL: "AcrPull",
    ROLES.ACI_CONTRIBUTOR: "Azure Container Instances Contributor Role",
    ROLES.IDENTITY_OPERATOR: "Managed Identity Operator",
}
_ENV = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_USERNAME",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
)


def azure_test_env(monkeypatch: pytest.MonkeyPatch, emulator: AzureEmulator) -> None:
    """Every Azure client at the emulator, signed in as the subscription's owner; nothing of
    the machine's own Azure sign-in in reach."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)


class Blocks:
    """The CLI's credentials-block store, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}
        self.saves = 0

    def save(self, name: str, data: dict[str, Any]) -> None:
        self.saves += 1
        self.saved[name] = data

    def exists(self, name: str) -> bool:
        return name in self.saved


def ours_left(emulator: AzureEmulator, pool: str) -> list[str]:
    """What of `pool` exists in the subscription: resources tagged with it, and role
    assignments whose description names it."""
    left = [f"group {g.name}" for g in emulator.resource_groups() if _tagged(g.tags, pool)]
    left += [f"identity {i.name}" for i in emulator.identities() if _tagged(i.tags, pool)]
    left += [f"registry {r.name}" for r in emulator.registries() if _tagged(r.tags, pool)]
    left += [
        f"{ROLE_NAMES.get(a.role_definition_guid, a.role_definition_guid)} on {a.scope}"
        for a in emulator.role_assignments()
        if a.description == f"Made by push-pools for pool {pool}"
    ]
    return left


def _tagged(tags: dict[str, str] | None, pool: str) -> bool:
    return (tags or {}).get("push-pools-pool") == pool


def names(emulator: AzureEmulator, pool: str) -> AzureNames:
    return AzureNames.of(pool, emulator.subscription_id)
