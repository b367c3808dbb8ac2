"""The user-assigned managed identity the pool's container groups run as (and pull images
with). Tagged as ours; one that existed untagged is adopted and never deleted.
Verbs follow provisioners/plan.py.
"""

from __future__ import annotations

from typing import Any

from provisioners.azure.base import AzureStep, StepIds, owned, owned_quietly
from provisioners.azure.clients import AzureContext
from provisioners.azure.errors import absent
from provisioners.plan import ResourceRecord, StepCheck

__all__ = ["IdentityStep"]


class IdentityStep(AzureStep):
    id = StepIds.IDENTITY
    kind = "azure:managed-identity"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"managed identity {name}"

    def _record_of(self, identity: Any, created: bool) -> ResourceRecord:
        data = {
            "id": str(identity.id),
            "name": self.name,
            "principal_id": str(identity.principal_id),
            "client_id": str(identity.client_id),
        }
        return self.record(str(identity.id), data, created=created)

    def _get(self, ctx: AzureContext) -> Any:
        return absent(
            ctx.clients.identities.user_assigned_identities.get,
            ctx.names.resource_group,
            self.name,
        )

    def _check(self, ctx: AzureContext) -> StepCheck:
        if StepIds.RESOURCE_GROUP not in ctx.outputs:
            return self.missing(self.name)  # its group is still to be made (a preview)
        identity = self._get(ctx)
        if identity is None:
            return self.missing(self.name)
        return self.found(self._record_of(identity, owned(ctx, identity.tags, self.title)))

    def _create(self, ctx: AzureContext) -> ResourceRecord:
        identity = self._get(ctx)
        if identity is not None:
            return self._record_of(identity, owned(ctx, identity.tags, self.title))
        made = ctx.clients.identities.user_assigned_identities.create_or_update(
            ctx.names.resource_group, self.name, {"location": ctx.location, "tags": ctx.tags}
        )
        return self._record_of(made, True)

    def _sweep(self, ctx: AzureContext) -> None:
        identity = self._get(ctx)
        if identity is not None and owned_quietly(ctx, identity.tags, self.title):
            self._delete(ctx, self._record_of(identity, True))

    def _delete(self, ctx: AzureContext, record: ResourceRecord) -> None:
        absent(
            ctx.clients.identities.user_assigned_identities.delete,
            ctx.names.resource_group,
            self.name,
        )
