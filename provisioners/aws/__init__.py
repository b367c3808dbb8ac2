"""The AWS provisioner for `ecs:push` pools: `push-pools work-pool create --type ecs:push
--provision-infra my-pool`.

A Plan (provisioners/plan.py) of idempotent steps, one module per resource family:

    account.py  the account and region the pool lives in (pins them; teardown's final sweep)
    logs.py     CloudWatch log group (retention)
    ecr.py      ECR repository
    s3.py       S3 bucket for the pool's code bundles (private, encrypted)
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

Importing this package imports none of its modules (nor boto3); each name loads its module on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): the CLI imports `provisioners.aws.spec` to draw --help, and
# that must not pull in every step module.
_EXPORTS = {
    "aws_steps": "build",
    "build_aws_plan": "build",
    "template_defaults": "build",
    "MANAGED_BY": "config",
    "MANAGED_BY_TAG": "config",
    "POOL_TAG": "config",
    "AwsNames": "config",
    "AwsProvisionConfig": "config",
    "InjectedFailure": "config",
    "PreflightReport": "preflight",
    "preflight": "preflight",
    "required_actions": "preflight",
    "AwsContext": "session",
    "aws_session": "session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    # Bind every name of that module now: importing `preflight.py` set this package's
    # `preflight` to the module, and the function of that name must win.
    for export, where in _EXPORTS.items():
        if where == module_name:
            globals()[export] = getattr(module, export)
    return globals()[name]
