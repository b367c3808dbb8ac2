"""The first step: which project and region this pool lives in. It creates nothing.

Its record pins the pool to the project and region, so a later run (or teardown) aimed at
another project stops before touching anything there. It is the first record saved, so every
half-finished apply has it; teardown, which runs it last, uses its delete to sweep what carries
our mark but has no record (a resource created just before a crash). Verbs: provisioners/plan.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from provisioners.gcp.base import GcpStep, StepIds
from provisioners.gcp.clients import GcpContext, retry
from provisioners.gcp.config import CLOUD
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck, StepStatus

__all__ = ["ProjectStep"]


class ProjectStep(GcpStep):
    id = StepIds.PROJECT
    kind = "gcp:project"

    def __init__(self, steps: Callable[[], Sequence[GcpStep]]) -> None:
        # The plan's resource steps, in apply order (a callable: they are built after this one).
        self._steps = steps
        self.title = "Google Cloud project and region"

    def _check(self, ctx: GcpContext) -> StepCheck:
        prior = ctx.outputs.get(self.id)
        if prior is not None and (
            prior.data.get("project") != ctx.project or prior.data.get("region") != ctx.region
        ):
            raise ProvisioningError(
                f"this pool was provisioned in project {prior.data.get('project')}, region "
                f"{prior.data.get('region')}, not project {ctx.project}, region {ctx.region}: "
                "leave out --project/--region (the records say where), or deprovision first",
                step_id=self.id,
                cloud=CLOUD,
            )
        project = ctx.clients.projects.get_project(name=f"projects/{ctx.project}", retry=retry())
        number = project.name.rpartition("/")[2]
        # created=True so that teardown calls delete (the sweep); there is nothing to create.
        record = self.record(
            f"projects/{ctx.project}",
            {"project": ctx.project, "project_number": number, "region": ctx.region},
        )
        return StepCheck(StepStatus.EXISTS, f"project {ctx.project} (number {number})", record)

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        # Last first, as teardown: bindings before accounts, the key before its account.
        for step in reversed(list(self._steps())):
            step.sweep(ctx)
