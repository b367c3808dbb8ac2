"""The first step: which subscription, location and resource group this pool lives in. It
creates nothing.

Its record pins the pool there, so a later run (or teardown) aimed elsewhere stops before
touching anything. It is the first record saved, so every half-finished apply has it; teardown,
which runs it last, uses its delete to sweep what carries our mark but has no record (a resource
created just before a crash). Verbs: provisioners/plan.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from provisioners.azure.base import AzureStep, StepIds
from provisioners.azure.clients import AzureClients, AzureContext
from provisioners.azure.config import CLOUD
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck, StepStatus
from push_pools.errors import InvalidInput

__all__ = ["SubscriptionStep", "verify_location"]


def verify_location(clients: AzureClients, subscription_id: str, location: str) -> str:
    """The subscription's display name, once it is visible and offers `location`."""
    from azure.core.exceptions import ResourceNotFoundError

    subscriptions = clients.subscriptions
    try:
        found = subscriptions.subscriptions.get(subscription_id)
    except ResourceNotFoundError as exc:
        raise InvalidInput(
            f"Azure subscription {subscription_id} does not exist or the credentials may not "
            "see it: check --subscription / AZURE_SUBSCRIPTION_ID"
        ) from exc
    names = sorted(
        {str(x.name) for x in subscriptions.subscriptions.list_locations(subscription_id)}
    )
    if location.lower() not in names:
        raise InvalidInput(
            f"subscription {subscription_id} has no location {location!r}; pass --location with "
            f"one of: {', '.join(names)}"
        )
    return str(found.display_name or subscription_id)


class SubscriptionStep(AzureStep):
    id = StepIds.SUBSCRIPTION
    kind = "azure:subscription"

    def __init__(self, steps: Callable[[], Sequence[AzureStep]]) -> None:
        # The plan's resource steps, in apply order (a callable: they are built after this one).
        self._steps = steps
        self.title = "Azure subscription, location and resource group"

    def _where(self, ctx: AzureContext) -> dict[str, str]:
        return {
            "subscription_id": ctx.subscription_id,
            "location": ctx.location,
            "resource_group": ctx.names.resource_group,
        }

    def _check(self, ctx: AzureContext) -> StepCheck:
        prior = ctx.outputs.get(self.id)
        where = self._where(ctx)
        if prior is not None and any(prior.data.get(k) != v for k, v in where.items()):
            raise ProvisioningError(
                f"this pool was provisioned in subscription {prior.data.get('subscription_id')}, "
                f"location {prior.data.get('location')}, resource group "
                f"{prior.data.get('resource_group')}, not in {', '.join(where.values())}: leave "
                "out --subscription/--location/--resource-group (the records say where), or "
                "deprovision first",
                step_id=self.id,
                cloud=CLOUD,
            )
        name = verify_location(ctx.clients, ctx.subscription_id, ctx.location)
        # created=True so that teardown calls delete (the sweep); there is nothing to create.
        record = self.record(f"/subscriptions/{ctx.subscription_id}", where)
        return StepCheck(StepStatus.EXISTS, f"{name}, {ctx.location}", record)

    def _delete(self, ctx: AzureContext, record: ResourceRecord) -> None:
        # Last first, as teardown: role assignments before what they are on.
        for step in reversed(list(self._steps())):
            step.sweep(ctx)
