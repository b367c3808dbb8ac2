"""The Azure Container Registry the pool's images live in.

Its name is derived from the subscription and the pool (config.AzureNames), never "the first
registry whose name starts with a prefix". Registry names are global across Azure: when that
name belongs to a registry outside this pool's resource group, provisioning stops and says so.
One in the group without our tags is adopted and never deleted. Verbs follow
provisioners/plan.py.
"""

from __future__ import annotations

from typing import Any

from provisioners.azure.base import AzureStep, StepIds, owned, owned_quietly
from provisioners.azure.clients import WAIT_SECONDS, AzureClients, AzureContext
from provisioners.azure.config import AzureProvisionConfig
from provisioners.azure.errors import absent, arm_code
from provisioners.plan import ResourceRecord, StepCheck
from push_pools.errors import InvalidInput

__all__ = ["RegistryStep"]

_TYPE = "Microsoft.ContainerRegistry/registries"


class RegistryStep(AzureStep):
    id = StepIds.REGISTRY
    kind = "azure:container-registry"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"container registry {name}"

    def ensure_available(self, clients: AzureClients, config: AzureProvisionConfig) -> None:
        """InvalidInput when the name is taken by a registry outside the pool's group."""
        group = config.names.resource_group
        if absent(clients.registries.registries.get, group, self.name) is not None:
            return
        status = clients.registries.registries.check_name_availability(
            {"name": self.name, "type": _TYPE}
        )
        if not status.name_available:
            raise self._taken(group)

    def _taken(self, group: str) -> InvalidInput:
        return InvalidInput(
            f"the container registry name {self.name} (derived from the subscription and pool) "
            f"is taken by a registry outside resource group {group}; "
            "registry names are global across Azure: delete that registry if it is yours, or "
            "give this pool another name"
        )

    def _record_of(self, registry: Any, created: bool) -> ResourceRecord:
        data = {"id": str(registry.id), "name": self.name, "login_server": registry.login_server}
        return self.record(str(registry.id), data, created=created)

    def _get(self, ctx: AzureContext) -> Any:
        return absent(ctx.clients.registries.registries.get, ctx.names.resource_group, self.name)

    def _available(self, ctx: AzureContext) -> bool:
        status = ctx.clients.registries.registries.check_name_availability(
            {"name": self.name, "type": _TYPE}
        )
        return bool(status.name_available)

    def _check(self, ctx: AzureContext) -> StepCheck:
        registry = self._get(ctx) if StepIds.RESOURCE_GROUP in ctx.outputs else None
        if registry is None:
            if not self._available(ctx):
                raise self._taken(ctx.names.resource_group)
            return self.missing(f"{self.name}.azurecr.io (Basic)")
        return self.found(self._record_of(registry, owned(ctx, registry.tags, self.title)))

    def _create(self, ctx: AzureContext) -> ResourceRecord:
        from azure.core.exceptions import HttpResponseError

        registry = self._get(ctx)
        if registry is not None:
            return self._record_of(registry, owned(ctx, registry.tags, self.title))
        body = {
            "location": ctx.location,
            "tags": ctx.tags,
            "sku": {"name": "Basic"},
            # Pulls go through the managed identity (AcrPull); no shared admin password.
            "admin_user_enabled": False,
        }
        try:
            poller = ctx.clients.registries.registries.begin_create(
                ctx.names.resource_group, self.name, body
            )
            made = poller.result(timeout=WAIT_SECONDS)
        except HttpResponseError as exc:
            if arm_code(exc) in ("AlreadyInUse", "RegistryNameNotAvailable"):
                raise self._taken(ctx.names.resource_group) from exc
            raise
        return self._record_of(made, True)

    def _sweep(self, ctx: AzureContext) -> None:
        registry = self._get(ctx)
        if registry is not None and owned_quietly(ctx, registry.tags, self.title):
            self._delete(ctx, self._record_of(registry, True))

    def _delete(self, ctx: AzureContext, record: ResourceRecord) -> None:
        poller = absent(
            ctx.clients.registries.registries.begin_delete, ctx.names.resource_group, self.name
        )
        if poller is not None:
            poller.result(timeout=WAIT_SECONDS)
