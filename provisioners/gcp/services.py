"""Service Usage step: the APIs the pool needs, enabled.

Verbs follow provisioners/plan.py. APIs are recorded as adopted: teardown never disables one,
since disabling an API breaks whatever else in the project uses it.
"""

from __future__ import annotations

from provisioners.gcp.base import GcpStep, StepIds
from provisioners.gcp.clients import OPERATION_TIMEOUT, GcpContext, retry
from provisioners.gcp.config import REQUIRED_SERVICES
from provisioners.plan import ResourceRecord, StepCheck

__all__ = ["ServicesStep"]


class ServicesStep(GcpStep):
    id = StepIds.SERVICES
    kind = "gcp:services"
    title = "APIs: Cloud Run, Artifact Registry, IAM"

    def _disabled(self, ctx: GcpContext) -> list[str]:
        from google.cloud import service_usage_v1

        enabled = service_usage_v1.State.ENABLED
        off = []
        for service in REQUIRED_SERVICES:
            found = ctx.clients.services.get_service(
                request={"name": f"projects/{ctx.project}/services/{service}"}, retry=retry()
            )
            if found.state != enabled:
                off.append(service)
        return off

    def _record_of(self, ctx: GcpContext, enabled_now: list[str]) -> ResourceRecord:
        data = {"services": list(REQUIRED_SERVICES), "enabled_by_push_pools": enabled_now}
        return self.record(f"projects/{ctx.project}/services", data, created=False)

    def _check(self, ctx: GcpContext) -> StepCheck:
        off = self._disabled(ctx)
        ctx.pending_services = set(off)
        if off:
            return self.missing(f"enable {', '.join(off)}")
        prior = ctx.outputs.get(self.id)
        record = prior if prior is not None else self._record_of(ctx, [])
        return self.found(record, detail="enabled (never disabled by teardown)")

    def _create(self, ctx: GcpContext) -> ResourceRecord:
        off = self._disabled(ctx)
        if off:
            operation = ctx.clients.services.batch_enable_services(
                request={"parent": f"projects/{ctx.project}", "service_ids": off}, retry=retry()
            )
            operation.result(timeout=OPERATION_TIMEOUT)
        ctx.pending_services = set()
        return self._record_of(ctx, off)

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        pass  # adopted: the Plan never calls this
