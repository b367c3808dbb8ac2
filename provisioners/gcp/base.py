"""The shared shape of a GCP step: the four verbs of provisioners/plan.py's Step, each inside
the error boundary, plus ownership marks the resource modules share.

A concrete step implements `_check`, `_create` and, where it can converge drift, `_update`,
and `_delete`; see provisioners/plan.py for what each verb promises.
"""

from __future__ import annotations

import re
from typing import Any

from provisioners.gcp.clients import GcpContext
from provisioners.gcp.config import CLOUD, LABEL_MANAGED_BY, LABEL_POOL, MANAGED_BY
from provisioners.gcp.errors import translate_errors
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck, StepStatus
from push_pools.errors import InvalidInput

__all__ = ["GcpStep", "StepIds", "account_mark", "label_owner", "marked_pool", "owned"]


class StepIds:
    """Step ids: records are stored under them, so they never change once released."""

    PROJECT = "gcp-project"
    SERVICES = "gcp-services"
    REPOSITORY = "gcp-artifact-repository"
    RUNTIME_ACCOUNT = "gcp-runtime-account"
    CONTROL_ACCOUNT = "gcp-control-account"
    ACT_AS = "gcp-runtime-account-user"
    PROJECT_ROLE = "gcp-project-run-developer"
    KEY = "gcp-control-account-key"


class GcpStep:
    """Base of every GCP step. Subclasses set `id`, `kind` and `title`."""

    id: str = ""
    kind: str = ""
    title: str = ""

    def check(self, ctx: GcpContext) -> StepCheck:
        with translate_errors(self.id):
            return self._check(ctx)

    def create(self, ctx: GcpContext) -> ResourceRecord:
        with translate_errors(self.id):
            record = self._create(ctx)
        ctx.maybe_fail(self.id)
        return record

    def update(self, ctx: GcpContext, record: ResourceRecord) -> ResourceRecord:
        with translate_errors(self.id):
            return self._update(ctx, record)

    def delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        with translate_errors(self.id):
            self._delete(ctx, record)

    def sweep(self, ctx: GcpContext) -> None:
        """Delete this step's resource if it exists and carries our mark, record or not: a
        crash between a create and its record leaves a resource only its mark points to."""
        with translate_errors(self.id):
            try:
                found = self._check(ctx)
            except InvalidInput:
                return  # another pool's, or nobody's: not ours to delete
            if found.record is not None and found.record.created:
                self._delete(ctx, found.record)

    # --- for subclasses ------------------------------------------------------------------------

    def _check(self, ctx: GcpContext) -> StepCheck:
        raise NotImplementedError

    def _create(self, ctx: GcpContext) -> ResourceRecord:
        raise NotImplementedError

    def _update(self, ctx: GcpContext, record: ResourceRecord) -> ResourceRecord:
        # Steps whose check never says UPDATE keep this; reaching it means a Plan bug.
        raise ProvisioningError(f"{self.title}: nothing to update", step_id=self.id, cloud=CLOUD)

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        raise NotImplementedError

    def record(
        self, identifier: str, data: dict[str, Any], *, created: bool = True
    ) -> ResourceRecord:
        return ResourceRecord(
            step=self.id, kind=self.kind, identifier=identifier, created=created, data=data
        )

    def found(
        self, record: ResourceRecord, drift: list[str] | None = None, detail: str = ""
    ) -> StepCheck:
        """EXISTS, or UPDATE when `drift` names what differs from what we want."""
        if drift:
            return StepCheck(
                StepStatus.UPDATE, f"{record.identifier} (drifted: {', '.join(drift)})", record
            )
        if not record.created:
            detail = detail or "adopted: not created by push-pools, used as is and never deleted"
        return StepCheck(StepStatus.EXISTS, detail or record.identifier, record)

    @staticmethod
    def missing(detail: str) -> StepCheck:
        return StepCheck(StepStatus.CREATE, detail)


def owned(ctx: GcpContext, pool: str | None, managed: bool, what: str) -> bool:
    """True if the marks say this pool made it; False if it may be adopted as is.

    A resource of another push-pools pool is never shared: that pool's teardown would delete
    it from under us.
    """
    if managed and pool == ctx.config.pool_name:
        return True
    if pool is not None and pool != ctx.config.pool_name:
        raise InvalidInput(
            f"{what} already exists and belongs to push-pools pool {pool!r}; pools cannot share "
            "it: give this pool another name"
        )
    return False


def label_owner(labels: Any) -> tuple[str | None, bool]:
    """(pool, made by push-pools) from a resource's labels."""
    found = dict(labels or {})
    return found.get(LABEL_POOL), found.get(LABEL_MANAGED_BY) == MANAGED_BY


# Service accounts have no labels: their description carries the mark.
_ACCOUNT_MARK = re.compile(r"^Made by push-pools for pool ([a-z0-9-]+)\b")


def account_mark(pool: str, purpose: str) -> str:
    return f"Made by push-pools for pool {pool}: {purpose}"


def marked_pool(description: str) -> str | None:
    found = _ACCOUNT_MARK.match(description or "")
    return found.group(1) if found else None
