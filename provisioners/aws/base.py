"""The shared shape of an AWS step: the four verbs of provisioners/plan.py's Step, each run inside
the error boundary, plus ownership rules and small helpers the resource modules share.

A concrete step implements `_check`, `_create` and, where it can converge drift, `_update` and
`_delete`; see provisioners/plan.py for what each verb promises.
"""

from __future__ import annotations

import json
from typing import Any

from provisioners.aws.config import MANAGED_BY, MANAGED_BY_TAG, POOL_TAG
from provisioners.aws.errors import CLOUD, translate_errors
from provisioners.aws.session import AwsContext
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck, StepStatus
from push_pools.errors import InvalidInput

__all__ = [
    "AwsStep",
    "StepIds",
    "canonical",
    "ensure_same_account",
    "owned",
    "paginate",
    "tags_of",
]


class StepIds:
    """Step ids: records are stored under them, so they never change once released."""

    ACCOUNT = "aws-account"
    LOG_GROUP = "logs-group"
    REPOSITORY = "ecr-repository"
    CLUSTER = "ecs-cluster"
    EXECUTION_ROLE = "iam-execution-role"
    TASK_ROLE = "iam-task-role"
    VPC = "network-vpc"
    INTERNET_GATEWAY = "network-internet-gateway"
    SUBNETS = "network-subnets"
    ROUTE_TABLE = "network-route-table"
    SECURITY_GROUP = "network-security-group"
    USER = "iam-user"
    USER_POLICY = "iam-user-policy"
    ACCESS_KEY = "iam-access-key"


class AwsStep:
    """Base of every AWS step. Subclasses set `id`, `kind` and `title`."""

    id: str = ""
    kind: str = ""
    title: str = ""

    def check(self, ctx: AwsContext) -> StepCheck:
        with translate_errors(self.id):
            return self._check(ctx)

    def create(self, ctx: AwsContext) -> ResourceRecord:
        with translate_errors(self.id):
            record = self._create(ctx)
        ctx.maybe_fail(self.id)
        return record

    def update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        with translate_errors(self.id):
            return self._update(ctx, record)

    def delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        with translate_errors(self.id):
            ensure_same_account(ctx, self.id)
            self._delete(ctx, record)

    def sweep(self, ctx: AwsContext) -> None:
        """Delete this step's resource if it exists and carries our tags, record or not.

        The teardown's last act (see account.py): a crash between a create and its record
        leaves a resource only its tags point to. Resources without our tags are never touched.
        """
        with translate_errors(self.id):
            self._sweep(ctx)

    # --- for subclasses ------------------------------------------------------------------------

    def _check(self, ctx: AwsContext) -> StepCheck:
        raise NotImplementedError

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        raise NotImplementedError

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        # Steps whose check never says UPDATE keep this; reaching it means a Plan bug.
        raise ProvisioningError(f"{self.title}: nothing to update", step_id=self.id, cloud=CLOUD)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        raise NotImplementedError

    def _sweep(self, ctx: AwsContext) -> None:
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
        if drift and record.created:
            return StepCheck(
                StepStatus.UPDATE, f"{record.identifier} (drifted: {', '.join(drift)})", record
            )
        if not record.created:
            detail = detail or "adopted: not created by push-pools, used as is and never deleted"
        return StepCheck(StepStatus.EXISTS, detail or record.identifier, record)

    @staticmethod
    def missing(detail: str) -> StepCheck:
        return StepCheck(StepStatus.CREATE, detail)


def ensure_same_account(ctx: AwsContext, step_id: str) -> None:
    """Refuse to act on records made in another account or region than the credentials reach:
    names are only unique per account and region, so we would delete a stranger's namesake."""
    account = ctx.output(StepIds.ACCOUNT, "account_id")
    region = ctx.output(StepIds.ACCOUNT, "region")
    if account is None:
        return
    if account != ctx.identity.account_id or region != ctx.region:
        raise ProvisioningError(
            f"this pool's AWS resources are in account {account}, region {region}, but the "
            f"credentials reach account {ctx.identity.account_id}, region {ctx.region}: use "
            "the profile / region the pool was provisioned with",
            step_id=step_id,
            cloud=CLOUD,
        )


def tags_of(raw: Any) -> dict[str, str]:
    """AWS answers tags as a dict, as [{"Key","Value"}] or as [{"key","value"}]; one shape."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    tags: dict[str, str] = {}
    for item in raw or []:
        key = item.get("Key", item.get("key"))
        if key is not None:
            tags[str(key)] = str(item.get("Value", item.get("value", "")))
    return tags


def owned(ctx: AwsContext, tags: dict[str, str], what: str, *, adoptable: bool) -> bool:
    """True if our tags mark the resource as this pool's; False if it may be adopted as is.

    A resource of another push-pools pool is never shared (that pool's teardown would delete it
    from under us), and an untagged IAM user or policy is never adopted (we would attach our
    policy to, or make keys for, someone else's identity).
    """
    pool = tags.get(POOL_TAG)
    if tags.get(MANAGED_BY_TAG) == MANAGED_BY and pool == ctx.config.pool_name:
        return True
    if pool is not None and pool != ctx.config.pool_name:
        raise InvalidInput(
            f"{what} already exists and belongs to push-pools pool {pool!r}; pools cannot share "
            "it: give this pool another name or pass a name override"
        )
    if not adoptable:
        raise InvalidInput(
            f"{what} already exists and was not created by push-pools; it will not be reused: "
            "delete it or pass a different name override"
        )
    return False


def canonical(document: Any) -> str:
    """A policy document as comparable text (IAM hands documents back as dicts or JSON)."""
    if isinstance(document, str):
        document = json.loads(document)
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    """Every item under `key` across all pages of `operation`."""
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items
