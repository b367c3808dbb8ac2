"""The resource group the pool's resources live in.

One push-pools made (our tags) is deleted by teardown, and everything left in it with it, so a
teardown refuses while it holds resources someone else put there. One that existed is adopted:
used as is, never tagged, never deleted. Verbs follow provisioners/plan.py.
"""

from __future__ import annotations

from typing import Any

from provisioners.azure.base import AzureStep, StepIds, owned
from provisioners.azure.clients import WAIT_SECONDS, AzureContext
from provisioners.azure.config import CLOUD, TAG_POOL
from provisioners.azure.errors import absent
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck

__all__ = ["ResourceGroupStep"]

# Container groups are the pool's own runs: they go with the group.
_RUNS = "microsoft.containerinstance/containergroups"


class ResourceGroupStep(AzureStep):
    id = StepIds.RESOURCE_GROUP
    kind = "azure:resource-group"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"resource group {name}"

    def _record_of(self, group: Any, created: bool) -> ResourceRecord:
        data = {"name": self.name, "id": str(group.id), "location": str(group.location)}
        return self.record(str(group.id), data, created=created)

    def _check(self, ctx: AzureContext) -> StepCheck:
        group = absent(ctx.clients.resources.resource_groups.get, self.name)
        if group is None:
            return self.missing(f"{self.name} in {ctx.location}")
        ours = owned(ctx, group.tags, f"resource group {self.name}")
        return self.found(self._record_of(group, ours))

    def _create(self, ctx: AzureContext) -> ResourceRecord:
        groups = ctx.clients.resources.resource_groups
        group = absent(groups.get, self.name)
        if group is not None:  # made since the check (or by the run a crash cut short)
            return self._record_of(group, owned(ctx, group.tags, f"resource group {self.name}"))
        made = groups.create_or_update(self.name, {"location": ctx.location, "tags": ctx.tags})
        return self._record_of(made, True)

    def _delete(self, ctx: AzureContext, record: ResourceRecord) -> None:
        resources = ctx.clients.resources
        if absent(resources.resource_groups.get, self.name) is None:
            return
        strangers = [
            str(r.name)
            for r in resources.resources.list_by_resource_group(self.name)
            if (r.tags or {}).get(TAG_POOL) != ctx.config.pool_name and str(r.type).lower() != _RUNS
        ]
        if strangers:
            raise ProvisioningError(
                f"resource group {self.name} holds resources push-pools did not make "
                f"({', '.join(sorted(strangers))}); move or delete them, then run the teardown "
                "again",
                step_id=self.id,
                cloud=CLOUD,
            )
        poller = absent(resources.resource_groups.begin_delete, self.name)
        if poller is not None:
            poller.result(timeout=WAIT_SECONDS)
