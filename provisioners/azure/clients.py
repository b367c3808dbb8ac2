"""Credentials, the azure-mgmt clients, and the context object every Azure step receives.

Every client takes push_pools.executors.aci.credentials' `client_kwargs()`, so
PUSH_POOLS_AZURE_ENDPOINT / PUSH_POOLS_AZURE_CA_BUNDLE point all of them at an emulator.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from provisioners.azure.config import AzureNames, AzureProvisionConfig, InjectedFailure
from provisioners.azure.errors import no_secret
from provisioners.plan import ResourceRecord
from push_pools.errors import InvalidInput

__all__ = ["AzureClients", "AzureContext", "object_id_of", "WAIT_SECONDS"]

ARM_SCOPE = "https://management.azure.com/.default"
# How long a provider registration or a long-running operation may take before we give up.
WAIT_SECONDS = 300.0


def object_id_of(credential: Any) -> str:
    """The object id (`oid` claim) of the principal `credential` signs in as.

    Read from an access token of our own (not verified: we only learn who we are), so a
    service principal's object id needs no Microsoft Graph call.
    """
    token = credential.get_token(ARM_SCOPE).token
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["oid"])
    except (IndexError, ValueError, KeyError) as exc:
        raise InvalidInput(
            "could not read the principal's object ID from its Azure token; pass --principal-id"
        ) from exc


class AzureClients:
    """Lazily made clients, all with the same credential and endpoint settings."""

    def __init__(self, credential: Any, subscription_id: str) -> None:
        self.credential = credential
        self.subscription_id = subscription_id
        self._made: dict[str, Any] = {}

    def _client(self, name: str, kind: Any, *, subscription: bool = True) -> Any:
        if name not in self._made:
            from push_pools.executors.aci.credentials import client_kwargs

            args = (self.credential, self.subscription_id) if subscription else (self.credential,)
            self._made[name] = kind(*args, **client_kwargs())
        return self._made[name]

    @property
    def subscriptions(self) -> Any:
        from azure.mgmt.resource.subscriptions import SubscriptionClient

        return self._client("subscriptions", SubscriptionClient, subscription=False)

    @property
    def resources(self) -> Any:
        from azure.mgmt.resource.resources import ResourceManagementClient

        return self._client("resources", ResourceManagementClient)

    @property
    def identities(self) -> Any:
        from azure.mgmt.msi import ManagedServiceIdentityClient

        return self._client("identities", ManagedServiceIdentityClient)

    @property
    def registries(self) -> Any:
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient

        return self._client("registries", ContainerRegistryManagementClient)

    @property
    def authorization(self) -> Any:
        from azure.mgmt.authorization import AuthorizationManagementClient

        return self._client("authorization", AuthorizationManagementClient)


class AzureContext:
    """What steps share: config, names, clients, the credentials store, outputs.

    `outputs` is filled by the Plan (records loaded, then each step's record).
    """

    def __init__(
        self, config: AzureProvisionConfig, clients: AzureClients, *, credentials_store: Any
    ) -> None:
        self.config = config
        self.clients = clients
        self.subscription_id = config.subscription_id
        self.location = config.location
        self.names: AzureNames = config.names
        self.tags = config.tags
        self.credentials_store = credentials_store
        self.outputs: dict[str, ResourceRecord] = {}
        self._control_principal: str | None = None

    def output(self, step_id: str, key: str, default: Any = None) -> Any:
        record = self.outputs.get(step_id)
        return record.data.get(key, default) if record is not None else default

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.names.resource_group}"

    @property
    def identity_id(self) -> str:
        return (
            f"{self.group_id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
            f"{self.names.identity}"
        )

    @property
    def registry_id(self) -> str:
        return (
            f"{self.group_id}/providers/Microsoft.ContainerRegistry/registries/"
            f"{self.names.registry}"
        )

    def role_definition_id(self, role: str) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role}"
        )

    def control_principal(self, recorded: str | None = None) -> str:
        """The object id the control plane's roles go to: --principal-id; else the service
        principal whose secret we store; with --managed-identity, whoever provisions; else
        what an earlier run recorded (`recorded`, so a teardown needs no secret)."""
        if self._control_principal is None:
            config = self.config
            if config.principal_id:
                self._control_principal = config.principal_id
            elif config.secret is not None:
                from push_pools.executors.aci.credentials import credential

                block = {
                    "tenant_id": config.secret.tenant_id,
                    "client_id": config.secret.client_id,
                    "client_secret": config.secret.client_secret,
                }
                self._control_principal = object_id_of(credential(block))
            elif config.managed_identity:
                self._control_principal = object_id_of(self.clients.credential)
            elif recorded:
                return recorded
            else:
                raise InvalidInput(no_secret())
        return self._control_principal

    def maybe_fail(self, step_id: str) -> None:
        """The `fail_at_step` test hook (see AzureProvisionConfig)."""
        if self.config.fail_at_step == step_id:
            raise InjectedFailure(f"injected failure after creating step {step_id} (test hook)")
