"""Azure's step base (provisioners/step.py's CloudStep with Azure's error boundary), plus the
ownership rule the resource modules share."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager

from provisioners.azure.clients import AzureContext
from provisioners.azure.config import CLOUD, MANAGED_BY, TAG_MANAGED_BY, TAG_POOL
from provisioners.azure.errors import translate_errors
from provisioners.step import CloudStep
from push_pools.errors import InvalidInput

__all__ = ["AzureStep", "StepIds", "owned", "owned_quietly"]


class StepIds:
    """Step ids: records are stored under them, so they never change once released."""

    SUBSCRIPTION = "azure-subscription"
    PROVIDERS = "azure-providers"
    RESOURCE_GROUP = "azure-resource-group"
    IDENTITY = "azure-identity"
    REGISTRY = "azure-registry"
    ACR_PULL = "azure-identity-acr-pull"
    CONTROL_ACI = "azure-control-aci-contributor"
    CONTROL_IDENTITY = "azure-control-identity-operator"
    CREDENTIALS = "azure-credentials-block"


class AzureStep(CloudStep[AzureContext]):
    """Base of every Azure step. Subclasses set `id`, `kind` and `title`."""

    cloud = CLOUD

    def _boundary(self) -> AbstractContextManager[None]:
        return translate_errors(self.id)


def owned(ctx: AzureContext, tags: Mapping[str, str] | None, what: str) -> bool:
    """True if our tags mark the resource as this pool's; False if it may be adopted as is.

    A resource of another push-pools pool is never shared: that pool's teardown would delete
    it from under us.
    """
    found = dict(tags or {})
    pool = found.get(TAG_POOL)
    if found.get(TAG_MANAGED_BY) == MANAGED_BY and pool == ctx.config.pool_name:
        return True
    if pool is not None and pool != ctx.config.pool_name:
        raise InvalidInput(
            f"{what} already exists and belongs to push-pools pool {pool!r}; pools cannot share "
            "it: give this pool another name or another --resource-group"
        )
    return False


def owned_quietly(ctx: AzureContext, tags: Mapping[str, str] | None, what: str) -> bool:
    """`owned`, with another pool's resource simply not ours (for sweeps)."""
    try:
        return owned(ctx, tags, what)
    except InvalidInput:
        return False
