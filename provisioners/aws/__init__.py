"""The AWS provisioner for `ecs:push` pools: `push-pools work-pool create --type ecs:push
--provision-infra my-pool`.

A Plan (provisioners/plan.py) of idempotent steps, one module per resource family:

    account.py  the account and region the pool lives in (pins them; teardown's final sweep)
    logs.py     CloudWatch log group (retention)
    ecr.py      ECR repository
    ecs.py      ECS cluster (Fargate, Fargate Spot)
    iam.py      task execution role, optional task role, control-plane user, its least-privilege
                policy, its access key (into an encrypted aws-credentials block via a callback)
    network.py  default VPC and subnets adopted, or a new VPC with public subnets; an
                egress-only security group
    preflight.py  caller identity and missing permissions, before anything changes

`config.py` (names, tags, validation), `session.py` (boto3 session and clients), `errors.py`
(botocore -> push-pools errors, by code) and `base.py` (the shared step shape) hold the rest.

Every created resource carries the tags push-pools:pool=<pool> and push-pools:managed-by=
push-pools and is recorded, so teardown deletes exactly what was created, last first; adopted
resources (the default VPC) are recorded with created=False and never touched. A crash
between a create and its record leaves a tagged resource that the next apply adopts (found by
name or tag) and that teardown's final sweep deletes.

For the CLI: `aws_session(config)`, then `preflight(config, session=...)` (show it; stop on
`report.missing_permissions`), `build_aws_plan(...)`, `plan.preview()`, `plan.apply()`,
`template_defaults(outputs, config)` into the pool's template; `plan.teardown()` with the same
profile and region, then delete the block named `config.credentials_block_name`.

Importing this package does not import boto3; the functions do.
"""

from __future__ import annotations

from provisioners.aws.build import aws_steps, build_aws_plan, template_defaults
from provisioners.aws.config import (
    MANAGED_BY,
    MANAGED_BY_TAG,
    POOL_TAG,
    AwsNames,
    AwsProvisionConfig,
    InjectedFailure,
)
from provisioners.aws.preflight import PreflightReport, preflight, required_actions
from provisioners.aws.session import AwsContext, aws_session

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_TAG",
    "POOL_TAG",
    "AwsContext",
    "AwsNames",
    "AwsProvisionConfig",
    "InjectedFailure",
    "PreflightReport",
    "aws_session",
    "aws_steps",
    "build_aws_plan",
    "preflight",
    "required_actions",
    "template_defaults",
]
