"""Resource providers the pool needs, registered in the subscription.

Recorded as adopted: teardown never unregisters one, since that would break whatever else in
the subscription uses it. Verbs follow provisioners/plan.py.
"""

from __future__ import annotations

import time

from provisioners.azure.base import AzureStep, StepIds
from provisioners.azure.clients import WAIT_SECONDS, AzureContext
from provisioners.azure.config import CLOUD, PROVIDERS
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck

__all__ = ["ProvidersStep"]

# Registration takes seconds to minutes: poll soon, then back off.
_FIRST_POLL_SECONDS = 0.1
_MAX_POLL_SECONDS = 5.0


class ProvidersStep(AzureStep):
    id = StepIds.PROVIDERS
    kind = "azure:providers"
    title = "resource providers: Container Instance, Container Registry, Managed Identity"

    def _unregistered(self, ctx: AzureContext) -> list[str]:
        providers = ctx.clients.resources.providers
        return [ns for ns in PROVIDERS if providers.get(ns).registration_state != "Registered"]

    def _record_of(self, ctx: AzureContext, registered_now: list[str]) -> ResourceRecord:
        data = {"providers": list(PROVIDERS), "registered_by_push_pools": registered_now}
        return self.record(f"/subscriptions/{ctx.subscription_id}/providers", data, created=False)

    def _check(self, ctx: AzureContext) -> StepCheck:
        off = self._unregistered(ctx)
        if off:
            return self.missing(f"register {', '.join(off)}")
        prior = ctx.outputs.get(self.id)
        record = prior if prior is not None else self._record_of(ctx, [])
        return self.found(record, detail="registered (never unregistered by teardown)")

    def _create(self, ctx: AzureContext) -> ResourceRecord:
        off = self._unregistered(ctx)
        for namespace in off:
            ctx.clients.resources.providers.register(namespace)
        deadline = time.monotonic() + WAIT_SECONDS
        pending = list(off)
        pause = _FIRST_POLL_SECONDS
        while pending:
            pending = [n for n in pending if n in self._unregistered(ctx)]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise ProvisioningError(
                    f"Azure is still registering {', '.join(pending)}; run again in a few minutes",
                    step_id=self.id,
                    cloud=CLOUD,
                )
            time.sleep(pause)
            pause = min(pause * 2, _MAX_POLL_SECONDS)
        return self._record_of(ctx, off)

    def _delete(self, ctx: AzureContext, record: ResourceRecord) -> None:
        pass  # adopted: the Plan never calls this
