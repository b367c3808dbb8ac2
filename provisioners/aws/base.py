"""AWS's step base (provisioners/step.py's CloudStep with AWS's error boundary and its
same-account check before any delete), plus ownership rules and small helpers the resource
modules share."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

from provisioners.aws.config import MANAGED_BY, MANAGED_BY_TAG, POOL_TAG
from provisioners.aws.errors import CLOUD, translate_errors
from provisioners.aws.session import AwsContext
from provisioners.plan import ProvisioningError
from provisioners.step import CloudStep
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
    BUCKET = "s3-bucket"
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


class AwsStep(CloudStep[AwsContext]):
    """Base of every AWS step. Subclasses set `id`, `kind` and `title`."""

    cloud = CLOUD

    def _boundary(self) -> AbstractContextManager[None]:
        return translate_errors(self.id)

    def _before_delete(self, ctx: AwsContext) -> None:
        ensure_same_account(ctx, self.id)


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
