"""The AWS plan: which steps, in which order, and what the pool's job template gets from them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioners.aws.account import AccountStep
from provisioners.aws.base import AwsStep, StepIds
from provisioners.aws.config import AwsProvisionConfig
from provisioners.aws.ecr import RepositoryStep
from provisioners.aws.ecs import ClusterStep
from provisioners.aws.errors import CLOUD
from provisioners.aws.iam import AccessKeyStep, PolicyStep, RoleStep, UserStep
from provisioners.aws.logs import LogGroupStep
from provisioners.aws.network import (
    InternetGatewayStep,
    RouteTableStep,
    SecurityGroupStep,
    SubnetsStep,
    VpcStep,
)
from provisioners.aws.s3 import BUNDLE_PREFIX, BucketStep
from provisioners.aws.session import AwsContext, CredentialsExist, SaveCredentials, aws_session
from provisioners.plan import Plan, ProvisioningError, Recorder, ResourceRecord
from push_pools.errors import InvalidInput

__all__ = ["LOG_STREAM_PREFIX", "aws_steps", "build_aws_plan", "template_defaults"]

LOG_STREAM_PREFIX = "push-pools"


def aws_steps(config: AwsProvisionConfig) -> tuple[list[AwsStep], list[AwsStep]]:
    """(steps to apply, retired steps). The task role is retired when not asked for, so a
    teardown can still delete one an earlier run created."""
    names = config.resolved_names
    task_role = RoleStep(StepIds.TASK_ROLE, names.task_role, "task")
    steps: list[AwsStep] = []
    retired: list[AwsStep] = [] if config.create_task_role else [task_role]
    steps += [
        # First, so every partial apply has it: it pins the account, and its teardown sweeps.
        AccountStep(lambda: [*steps[1:], *retired]),
        # Resources the control plane's policy is scoped to come first...
        LogGroupStep(names.log_group, config.log_retention_days),
        RepositoryStep(names.repository),
        BucketStep(names.bucket),
        ClusterStep(names.cluster),
        RoleStep(StepIds.EXECUTION_ROLE, names.execution_role, "execution"),
        *([task_role] if config.create_task_role else []),
        VpcStep(names.vpc),
        InternetGatewayStep(),
        SubnetsStep(),
        RouteTableStep(),
        SecurityGroupStep(names.security_group),
        # ...then the identity that uses them, its policy, and last its key (the only step
        # with an effect outside AWS: the credentials block).
        UserStep(names.user),
        PolicyStep(names.policy, names.user),
        AccessKeyStep(names.user, config.credentials_block_name),
    ]
    return steps, retired


def build_aws_plan(
    config: AwsProvisionConfig,
    recorder: Recorder,
    *,
    save_credentials: SaveCredentials,
    credentials_exist: CredentialsExist,
    session: Any = None,
) -> Plan:
    """The Plan that provisions (apply), previews or tears down `config`'s pool in AWS.

    `save_credentials(block_name, access_key_id, secret_access_key, region)` must create or
    overwrite the encrypted aws-credentials block; `credentials_exist(block_name)` says whether
    it exists. `session`: a boto3 Session from `aws_session(config)` to reuse (e.g. the one the
    pre-flight used); made here otherwise, so a bad profile, region or missing credentials
    raise InvalidInput before any step runs.
    """
    steps, retired = aws_steps(config)
    ids = [s.id for s in steps]
    if config.fail_at_step is not None and config.fail_at_step not in ids:
        raise InvalidInput(f"fail_at_step {config.fail_at_step!r} is not one of {ids}")
    ctx = AwsContext(
        config,
        session if session is not None else aws_session(config),
        save_credentials=save_credentials,
        credentials_exist=credentials_exist,
    )
    return Plan(steps, ctx, recorder, retired=retired, cloud=CLOUD)


def template_defaults(
    outputs: Mapping[str, ResourceRecord], config: AwsProvisionConfig
) -> dict[str, Any]:
    """Job-variable defaults for the `ecs:push` pool's base job template, from `apply()`'s
    records. Keys are the template's variable names (push_pools/ecs_template.py)."""
    needed = [
        StepIds.LOG_GROUP,
        StepIds.REPOSITORY,
        StepIds.BUCKET,
        StepIds.CLUSTER,
        StepIds.EXECUTION_ROLE,
        StepIds.SUBNETS,
        StepIds.SECURITY_GROUP,
    ]
    absent = [step for step in needed if step not in outputs]
    if absent:
        raise ProvisioningError(
            f"cannot fill the pool's job template: no record for {', '.join(absent)}; "
            "run the provisioning to completion first",
            cloud=CLOUD,
        )

    def data(step: str) -> dict[str, Any]:
        return outputs[step].data

    region = data(StepIds.CLUSTER).get("region") or config.region
    defaults: dict[str, Any] = {
        "region": region,
        "cluster": data(StepIds.CLUSTER)["arn"],
        "execution_role_arn": data(StepIds.EXECUTION_ROLE)["arn"],
        # No `image`: the template's built-in one stays, so a bundle deploy runs on the stock
        # Python image with the bootstrap (deploy/stock_image.py). An `<repo>:latest` default
        # here named an image nobody had pushed, and every such run failed to pull it. Image
        # deploys find the repository in the pool's records (deploy/registries.py).
        "configure_cloudwatch_logs": True,
        "cloudwatch_log_group": data(StepIds.LOG_GROUP)["name"],
        "cloudwatch_logs_prefix": LOG_STREAM_PREFIX,
        # The group exists with our retention; the execution role may not create groups.
        "cloudwatch_create_log_group": False,
        # ECS's awsvpcConfiguration shape, which the template's network_configuration takes.
        "network_configuration": {
            "subnets": list(data(StepIds.SUBNETS)["subnet_ids"]),
            "securityGroups": [data(StepIds.SECURITY_GROUP)["group_id"]],
            # Public subnets without a NAT gateway: a public IP is how tasks reach ECR.
            "assignPublicIp": "ENABLED",
        },
        "aws_credentials": config.credentials_block_name,
        # The server keeps this pool's code bundles there (push_pools/bundle_storage.py).
        "bundle_storage": f"s3://{data(StepIds.BUCKET)['name']}/{BUNDLE_PREFIX}",
    }
    if config.create_task_role and StepIds.TASK_ROLE in outputs:
        defaults["task_role_arn"] = data(StepIds.TASK_ROLE)["arn"]
    if config.endpoint_url:
        defaults["endpoint_url"] = config.endpoint_url
    return defaults
