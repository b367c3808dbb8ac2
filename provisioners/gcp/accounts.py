"""IAM steps: the service accounts. The runtime account is who a Cloud Run job runs as; the
control-plane account is who the server calls Cloud Run as.

Verbs follow provisioners/plan.py. An account with our name that someone else made is adopted:
used as is (we only add our own role bindings and key) and never deleted.
"""

from __future__ import annotations

from typing import Any

from provisioners.gcp.base import GcpStep, account_mark, marked_pool, owned
from provisioners.gcp.clients import GcpContext, retry
from provisioners.gcp.errors import absent, canonical_code
from provisioners.plan import ResourceRecord, StepCheck

__all__ = ["ServiceAccountStep"]

SERVICE = "iam.googleapis.com"


class ServiceAccountStep(GcpStep):
    kind = "gcp:iam:service-account"

    def __init__(self, step_id: str, account_id: str, purpose: str) -> None:
        self.id = step_id
        self.account_id = account_id
        self.purpose = purpose
        self.title = f"service account {account_id} ({purpose})"

    def _find(self, ctx: GcpContext) -> Any:
        return absent(
            ctx.clients.iam.get_service_account,
            name=ctx.account_name(self.account_id),
            retry=retry(),
        )

    def _record_of(self, ctx: GcpContext, account: Any) -> ResourceRecord:
        pool = marked_pool(account.description)
        created = owned(ctx, pool, pool is not None, f"service account {account.email}")
        data = {"email": account.email, "unique_id": account.unique_id}
        return self.record(account.name, data, created=created)

    def _check(self, ctx: GcpContext) -> StepCheck:
        if SERVICE in ctx.pending_services:
            return self.missing(f"{ctx.email(self.account_id)}, after the IAM API is enabled")
        account = self._find(ctx)
        if account is None:
            return self.missing(ctx.email(self.account_id))
        return self.found(self._record_of(ctx, account))

    def _create(self, ctx: GcpContext) -> ResourceRecord:
        from google.api_core.exceptions import Conflict
        from google.cloud import iam_admin_v1

        try:
            account = ctx.clients.iam.create_service_account(
                name=f"projects/{ctx.project}",
                account_id=self.account_id,
                service_account=iam_admin_v1.ServiceAccount(
                    display_name=f"push-pools {ctx.config.pool_name} {self.purpose}"[:100],
                    description=account_mark(ctx.config.pool_name, self.purpose),
                ),
                retry=retry(),
            )
        except Conflict as exc:
            if canonical_code(exc) != "ALREADY_EXISTS":
                raise
            # Made meanwhile (or by a retried call): its mark decides whose it is.
            account = ctx.clients.iam.get_service_account(name=ctx.account_name(self.account_id))
        return self._record_of(ctx, account)

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        absent(
            ctx.clients.iam.delete_service_account,
            name=ctx.account_name(self.account_id),
            retry=retry(),
        )
