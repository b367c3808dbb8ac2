"""The first step: which AWS account and region this pool lives in. It creates nothing.

Its record pins the pool to the account and region, so a later run (or teardown) with
credentials for another account stops before touching anything there. It is the first record
saved, so every half-finished apply has it, and teardown, which runs it last, uses its delete to
sweep what carries our tags but has no record: a resource created just before a crash, when
its record could not be saved. Step verbs follow provisioners/plan.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from provisioners.aws.base import AwsStep, StepIds
from provisioners.aws.errors import CLOUD
from provisioners.aws.session import AwsContext
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck, StepStatus

__all__ = ["AccountStep"]


class AccountStep(AwsStep):
    id = StepIds.ACCOUNT
    kind = "aws:account"

    def __init__(self, steps: Callable[[], Sequence[AwsStep]]) -> None:
        # The plan's resource steps, in apply order (a callable: they are built after this one).
        self._steps = steps
        self.title = "AWS account and region"

    def _check(self, ctx: AwsContext) -> StepCheck:
        identity = ctx.identity
        prior = ctx.outputs.get(self.id)
        if prior is not None and (
            prior.data.get("account_id") != identity.account_id
            or prior.data.get("region") != ctx.region
        ):
            raise ProvisioningError(
                f"this pool was provisioned in account {prior.data.get('account_id')}, region "
                f"{prior.data.get('region')}, but the credentials reach account "
                f"{identity.account_id}, region {ctx.region}: use the profile / region the "
                "pool was provisioned with",
                step_id=self.id,
                cloud=CLOUD,
            )
        # created=True so that teardown calls delete (the sweep); there is nothing to create.
        data = {"account_id": identity.account_id, "region": ctx.region, "caller": identity.arn}
        if ctx.config.endpoint_url:
            # A teardown finds the (emulated) account again from the records alone.
            data["endpoint_url"] = ctx.config.endpoint_url
        record = self.record(f"arn:{identity.partition}:iam::{identity.account_id}:root", data)
        return StepCheck(
            StepStatus.EXISTS, f"account {identity.account_id} as {identity.arn}", record
        )

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        # Last first, as teardown: children before the VPC, the policy before the user.
        for step in reversed(list(self._steps())):
            step.sweep(ctx)
