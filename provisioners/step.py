"""The shape every cloud's step shares: the four verbs of provisioners/plan.py's Step, each run
inside the cloud's error boundary, a sweep for teardown, and the record / found / missing helpers.

A cloud subclasses `CloudStep[ItsContext]` once (AwsStep, GcpStep, AzureStep), saying which
cloud it is (`cloud`), what its error boundary is (`_boundary`) and, where it has one, what must
hold before anything is deleted (`_before_delete`). A concrete step then implements `_check`,
`_create` and, where it can converge drift, `_update`, and `_delete`; see provisioners/plan.py
for what each verb promises.

Stdlib and push_pools.errors only, like plan.py.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck, StepStatus
from push_pools.errors import InvalidInput

__all__ = ["CloudStep", "StepContext"]


class StepContext(Protocol):
    """What the base needs of a cloud's context: the `fail_at_step` test hook."""

    def maybe_fail(self, step_id: str) -> None: ...


ContextT = TypeVar("ContextT", bound=StepContext)


class CloudStep(Generic[ContextT]):
    """Base of every step of every cloud. Subclasses set `id`, `kind` and `title`."""

    id: str = ""
    kind: str = ""
    title: str = ""
    cloud: ClassVar[str] = ""
    # Whether drift on a resource someone else made is reported as UPDATE (the step converges
    # it, e.g. a binding we add to their policy) or ignored (adopted resources are used as is).
    converge_adopted: ClassVar[bool] = False

    def check(self, ctx: ContextT) -> StepCheck:
        with self._boundary():
            return self._check(ctx)

    def create(self, ctx: ContextT) -> ResourceRecord:
        with self._boundary():
            record = self._create(ctx)
        ctx.maybe_fail(self.id)
        return record

    def update(self, ctx: ContextT, record: ResourceRecord) -> ResourceRecord:
        with self._boundary():
            return self._update(ctx, record)

    def delete(self, ctx: ContextT, record: ResourceRecord) -> None:
        with self._boundary():
            self._before_delete(ctx)
            self._delete(ctx, record)

    def sweep(self, ctx: ContextT) -> None:
        """Delete this step's resource if it exists and carries our mark, record or not.

        Teardown's last act: a crash between a create and its record leaves a resource only
        its mark points to. Resources without our mark are never touched.
        """
        with self._boundary():
            self._sweep(ctx)

    # --- for each cloud's base -----------------------------------------------------------------

    def _boundary(self) -> AbstractContextManager[Any]:
        """The cloud's error translation for this step (its SDK errors -> push-pools errors)."""
        raise NotImplementedError

    def _before_delete(self, ctx: ContextT) -> None:
        """Raise to refuse a delete (e.g. records made in another account than we reach)."""

    # --- for concrete steps --------------------------------------------------------------------

    def _check(self, ctx: ContextT) -> StepCheck:
        raise NotImplementedError

    def _create(self, ctx: ContextT) -> ResourceRecord:
        raise NotImplementedError

    def _update(self, ctx: ContextT, record: ResourceRecord) -> ResourceRecord:
        # Steps whose check never says UPDATE keep this; reaching it means a Plan bug.
        raise ProvisioningError(
            f"{self.title}: nothing to update", step_id=self.id, cloud=self.cloud
        )

    def _delete(self, ctx: ContextT, record: ResourceRecord) -> None:
        raise NotImplementedError

    def _sweep(self, ctx: ContextT) -> None:
        """Default: find the resource as check does; delete it if the check calls it ours."""
        try:
            found = self._check(ctx)
        except InvalidInput:
            return  # ownership says another pool's or nobody's: not ours to delete
        if found.record is not None and found.record.created:
            self._delete(ctx, found.record)

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
        if drift and (record.created or self.converge_adopted):
            return StepCheck(
                StepStatus.UPDATE, f"{record.identifier} (drifted: {', '.join(drift)})", record
            )
        if not record.created:
            detail = detail or "adopted: not created by push-pools, used as is and never deleted"
        return StepCheck(StepStatus.EXISTS, detail or record.identifier, record)

    @staticmethod
    def missing(detail: str) -> StepCheck:
        return StepCheck(StepStatus.CREATE, detail)
