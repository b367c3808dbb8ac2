"""The Azure provisioner in the shape provisioners/registry.py's Provisioner names.

Where to provision, in order: the flags; the pool's records (a provisioned pool stays where it
is); AZURE_SUBSCRIPTION_ID for the subscription. The location has no default: a new pool must
name one (never silently eastus). Who provisions: azure-identity's chain (AZURE_CLIENT_ID /
AZURE_TENANT_ID / AZURE_CLIENT_SECRET, workload or managed identity, `az login`). Whom the server
calls Azure as: the service principal of --client-id/--tenant-id/--client-secret, else of those
environment variables; with --managed-identity no secret at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from provisioners.azure.base import StepIds
from provisioners.azure.config import AzureProvisionConfig, ServicePrincipalSecret
from provisioners.plan import ResourceRecord
from provisioners.registry import CredentialsStore, Preflight
from push_pools.errors import InvalidInput

__all__ = ["AzureProvisioner"]

_PRINCIPAL = (
    ("client_id", "AZURE_CLIENT_ID"),
    ("tenant_id", "AZURE_TENANT_ID"),
    ("client_secret", "AZURE_CLIENT_SECRET"),
)


def _require_sdk() -> None:
    from push_pools.executors.aci.credentials import INSTALL_HINT, require_sdk

    require_sdk()
    try:
        from azure.mgmt import (  # noqa: F401
            authorization,
            containerregistry,
            msi,
            resource,
        )
        from azure.mgmt.resource import subscriptions  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"provisioning Azure needs its client libraries ({exc.name} is missing): {INSTALL_HINT}"
        ) from exc


def principal_secret(values: Mapping[str, Any]) -> ServicePrincipalSecret | None:
    """The service principal from the flags, else from the environment; None when neither
    names one. Flags and environment are never mixed: a half-given principal is an error."""
    given = {name: values.get(name) for name, _ in _PRINCIPAL}
    if any(given.values()):
        missing = ["--" + name.replace("_", "-") for name, value in given.items() if not value]
        if missing:
            raise InvalidInput(
                f"a service principal needs --client-id, --tenant-id and --client-secret; "
                f"missing {', '.join(missing)}"
            )
        return ServicePrincipalSecret(**{k: str(v) for k, v in given.items()})
    from_env = {name: os.environ.get(env, "").strip() for name, env in _PRINCIPAL}
    if all(from_env.values()):
        return ServicePrincipalSecret(**from_env)
    return None


class AzureProvisioner:
    cloud = "azure"

    def __init__(
        self,
        pool_name: str,
        values: Mapping[str, Any],
        *,
        records: Sequence[ResourceRecord] = (),
    ) -> None:
        from provisioners.azure.clients import AzureClients
        from push_pools.executors.aci.credentials import credential

        _require_sdk()
        pinned = next((r.data for r in records if r.step == StepIds.SUBSCRIPTION), {})
        subscription = (
            values.get("subscription")
            or pinned.get("subscription_id")
            or os.environ.get("AZURE_SUBSCRIPTION_ID", "").strip()
        )
        if not subscription:
            raise InvalidInput(
                "no Azure subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID"
            )
        location = values.get("location") or pinned.get("location")
        if not location:
            raise InvalidInput(
                "no Azure location: pass --location (e.g. westeurope); `az account "
                "list-locations -o table` lists your subscription's"
            )
        managed = bool(values.get("managed_identity"))
        self.config = AzureProvisionConfig(
            pool_name=pool_name,
            subscription_id=str(subscription),
            location=str(location).lower(),
            resource_group=str(values.get("resource_group") or pinned.get("resource_group") or ""),
            secret=None if managed else principal_secret(values),
            managed_identity=managed,
            principal_id=values.get("principal_id") or None,
        )
        self.clients = AzureClients(credential(None), self.config.subscription_id)

    def preflight(self) -> Preflight:
        from provisioners.azure.errors import no_secret, translate_errors
        from provisioners.azure.registry import RegistryStep
        from provisioners.azure.subscription import verify_location

        config = self.config
        if config.stores_secret and config.secret is None:
            raise InvalidInput(no_secret())
        with translate_errors():
            name = verify_location(self.clients, config.subscription_id, config.location)
            # A taken registry name stops the run here, before anything is made.
            RegistryStep(config.names.registry).ensure_available(self.clients, config)
        caller = os.environ.get("AZURE_CLIENT_ID") or "azure-identity's default credential"
        if config.secret is None:
            note = (
                "--managed-identity: no secret stored; run the server with the managed "
                "identity that gets the roles"
            )
        else:
            note = f"service principal {config.secret.client_id} (secret stored encrypted)"
        return Preflight(
            f"{config.subscription_id} ({name})",
            caller,
            config.location,
            note,
            scope="subscription",
        )

    def plan(self, recorder: Any, *, credentials: CredentialsStore) -> Any:
        from provisioners.azure.build import build_azure_plan

        return build_azure_plan(
            self.config, recorder, clients=self.clients, credentials_store=credentials
        )

    def template_defaults(self, outputs: dict[str, Any]) -> dict[str, Any]:
        from provisioners.azure.build import template_defaults

        return template_defaults(outputs, self.config)

    def credentials_block_name(self) -> str | None:
        return self.config.credentials_block_name if self.config.stores_secret else None
