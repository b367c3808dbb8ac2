"""What an Azure provisioning run is asked to do: the pool, the subscription, the location, the
names, and the control plane's principal.

Stdlib and push_pools.errors only, so a bad pool name is reported before azure-* is imported.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from push_pools.errors import InvalidInput

__all__ = [
    "CLOUD",
    "MANAGED_BY",
    "PROVIDERS",
    "ROLES",
    "TAG_MANAGED_BY",
    "TAG_POOL",
    "AzureNames",
    "AzureProvisionConfig",
    "InjectedFailure",
    "ServicePrincipalSecret",
    "assignment_name",
]

CLOUD = "azure"
TAG_POOL = "push-pools-pool"
TAG_MANAGED_BY = "push-pools-managed-by"
MANAGED_BY = "push-pools"
# Resource providers the pool's resources need; registered by us, since azure-mgmt-core's own
# fallback sleeps 10 s per poll.
PROVIDERS = (
    "Microsoft.ContainerInstance",
    "Microsoft.ContainerRegistry",
    "Microsoft.ManagedIdentity",
)


class ROLES:
    """Built-in role definition ids (the same GUID in every tenant)."""

    ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
    ACI_CONTRIBUTOR = "5d977122-f97e-4b4d-a52f-6b43003ddb4d"
    IDENTITY_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"


# Pool names reach resource group, identity and registry names: one rule for all of them.
_POOL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_]|-(?=[A-Za-z0-9_])){0,59}", re.ASCII)
POOL_NAME_RULE = "1 to 60 letters, digits, underscores and single hyphens, not starting with one"
_RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]", re.ASCII)
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Role assignment names are GUIDs: one derived from what it grants makes a retried PUT the same.
_ASSIGNMENTS = uuid.UUID("5f1d7c52-3b0e-4c38-9a57-6a3c2d7e41b0")


class InjectedFailure(RuntimeError):
    """Raised by the `fail_at_step` test hook: a crash between a cloud call and its record."""


def assignment_name(scope: str, role: str, principal: str) -> str:
    return str(uuid.uuid5(_ASSIGNMENTS, f"{scope.lower()}|{role}|{principal.lower()}"))


@dataclass(frozen=True)
class AzureNames:
    """Names derived from the pool (and, for the global registry name, the subscription)."""

    resource_group: str
    identity: str
    registry: str

    @classmethod
    def of(cls, pool: str, subscription_id: str, resource_group: str = "") -> AzureNames:
        # Registry names are global across Azure, 5 to 50 letters and digits: the pool's own
        # letters for people, a digest of subscription and pool so two subscriptions (or two
        # pools whose letters agree) never reach for the same name.
        letters = re.sub(r"[^a-z0-9]", "", pool.lower())[:30]
        digest = hashlib.sha256(f"{subscription_id.lower()}/{pool}".encode()).hexdigest()[:10]
        return cls(
            resource_group=resource_group or f"push-pools-{pool}",
            identity=f"push-pools-{pool}",
            registry=f"pp{letters}{digest}",
        )


@dataclass(frozen=True)
class ServicePrincipalSecret:
    """The control plane's service principal, to be stored in the azure-credentials block."""

    tenant_id: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"ServicePrincipalSecret(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class AzureProvisionConfig:
    """One provisioning run for an `azure-container-instance:push` pool.

    `subscription_id`, `location` and `resource_group` are resolved (provisioners.azure.adapter
    does that from the flags, the records and the environment). `secret`: the control plane's
    service principal, stored in the block; None with `managed_identity` (no block at all).
    `principal_id`: the object id to grant roles to, when it is not the secret's principal or
    the caller. `fail_at_step`: test hook; that step's create raises InjectedFailure right after
    its cloud calls succeeded, before the Plan records it.
    """

    pool_name: str
    subscription_id: str
    location: str
    resource_group: str = ""
    secret: ServicePrincipalSecret | None = None
    managed_identity: bool = False
    principal_id: str | None = None
    credentials_block_name: str = ""
    fail_at_step: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pool_name, str) or not _POOL_NAME.fullmatch(self.pool_name):
            raise InvalidInput(
                f"pool name {self.pool_name!r} cannot be used for Azure resource names: "
                f"{POOL_NAME_RULE} (e.g. 'aci-pool')"
            )
        if not _GUID.fullmatch(self.subscription_id or ""):
            raise InvalidInput(
                f"{self.subscription_id!r} is not an Azure subscription ID (a GUID); pass "
                "--subscription or set AZURE_SUBSCRIPTION_ID"
            )
        if self.principal_id is not None and not _GUID.fullmatch(self.principal_id):
            raise InvalidInput(f"--principal-id {self.principal_id!r} is not an object ID (a GUID)")
        if not self.resource_group:
            object.__setattr__(self, "resource_group", f"push-pools-{self.pool_name}")
        if not _RESOURCE_GROUP.fullmatch(self.resource_group):
            raise InvalidInput(
                f"{self.resource_group!r} is not a resource group name (1 to 90 letters, digits, "
                "'-', '_', '.', '(' and ')', not ending in '.')"
            )
        if not self.credentials_block_name:
            object.__setattr__(
                self, "credentials_block_name", f"{self.pool_name}-azure-credentials"
            )

    @property
    def names(self) -> AzureNames:
        return AzureNames.of(self.pool_name, self.subscription_id, self.resource_group)

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_POOL: self.pool_name, TAG_MANAGED_BY: MANAGED_BY}

    @property
    def stores_secret(self) -> bool:
        return not self.managed_identity
