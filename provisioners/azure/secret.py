"""The control plane's service principal, kept in an encrypted azure-credentials block.

Nothing in Azure is made here: the principal exists already (push-pools has no Microsoft Graph
client to make one). The secret goes straight into the block and never into a record, a log
or a message; the record keeps the block's name and the principal's client id, so a run with
another principal rewrites the block. The block itself is the CLI's to delete after teardown.
Verbs follow provisioners/plan.py.
"""

from __future__ import annotations

from provisioners.azure.base import AzureStep, StepIds
from provisioners.azure.clients import AzureContext
from provisioners.azure.config import ServicePrincipalSecret
from provisioners.azure.errors import no_secret
from provisioners.plan import ResourceRecord, StepCheck
from push_pools.errors import InvalidInput

__all__ = ["CredentialsBlockStep"]


class CredentialsBlockStep(AzureStep):
    id = StepIds.CREDENTIALS
    kind = "push-pools:azure-credentials-block"

    def __init__(self, block_name: str) -> None:
        self.block_name = block_name
        self.title = f"service principal's secret, stored in block '{block_name}'"

    def _secret(self, ctx: AzureContext) -> ServicePrincipalSecret:
        if ctx.config.secret is None:
            raise InvalidInput(no_secret())
        return ctx.config.secret

    def _record_of(self, ctx: AzureContext, secret: ServicePrincipalSecret) -> ResourceRecord:
        data = {
            "credentials_block": self.block_name,
            "client_id": secret.client_id,
            "tenant_id": secret.tenant_id,
        }
        return self.record(f"block:{self.block_name}", data)

    def _check(self, ctx: AzureContext) -> StepCheck:
        secret = self._secret(ctx)
        if not ctx.credentials_store.exists(self.block_name):
            return self.missing(f"azure-credentials '{self.block_name}' for {secret.client_id}")
        prior = ctx.outputs.get(self.id)
        if prior is None:
            return self.found(self._record_of(ctx, secret), ["not recorded"])
        drift = [
            f"{key} {prior.data.get(key)} -> {value}"
            for key, value in (("client_id", secret.client_id), ("tenant_id", secret.tenant_id))
            if prior.data.get(key) != value
        ]
        return self.found(prior, drift, detail=f"block '{self.block_name}'")

    def _create(self, ctx: AzureContext) -> ResourceRecord:
        return self._store(ctx)

    def _update(self, ctx: AzureContext, record: ResourceRecord) -> ResourceRecord:
        return self._store(ctx)

    def _store(self, ctx: AzureContext) -> ResourceRecord:
        secret = self._secret(ctx)
        ctx.credentials_store.save(
            self.block_name,
            {
                "tenant_id": secret.tenant_id,
                "client_id": secret.client_id,
                "client_secret": secret.client_secret,
                "subscription_id": ctx.subscription_id,
            },
        )
        return self._record_of(ctx, secret)

    def _sweep(self, ctx: AzureContext) -> None:
        pass  # the block is the CLI's; nothing in Azure to delete

    def _delete(self, ctx: AzureContext, record: ResourceRecord) -> None:
        pass  # the block is the CLI's to delete after teardown
