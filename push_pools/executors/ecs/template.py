"""The `ecs:push` work-pool type: the server starts each flow run as an AWS ECS task (Fargate).

Imported by pool_types when a type is first looked up, so it is standard library only, like the
registry. Variable names follow Prefect's ECS worker where the concept is the same (image, cpu,
memory, env, command, cluster, launch_type, capacity_provider_strategy, network_configuration,
execution_role_arn, task_role_arn, container_name, labels, aws_credentials, task_definition_arn,
auto_deregister_task_definition, configure_cloudwatch_logs, cloudwatch_logs_options,
cloudwatch_logs_prefix), so job variables users bring from Prefect keep their meaning.
"""

from __future__ import annotations

from typing import Any

from push_pools import bundle_storage, pool_types
from push_pools.errors import InvalidInput

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_CPU",
    "DEFAULT_IMAGE",
    "DEFAULT_MEMORY",
    "FARGATE_SIZES",
    "default_template",
    "fargate_size_error",
    "not_ready_reason",
    "POOL_TYPE",
    "uses_fargate",
    "validate_job_variables",
]

# A name, not a published image. A bundle deploy (the default for this pool) replaces it with a
# stock python image and the bootstrap command on the deployment (deploy/stock_image.py); other
# deployments name an image of their own. Keeping a placeholder (rather than python:3.12-slim)
# makes a forgotten image fail at pull time with a message naming it, not later at import time.
DEFAULT_IMAGE = "push-pools/flow-runner:latest"
DEFAULT_COMMAND = "python -m push_pools.engine"
DEFAULT_CPU = 512
DEFAULT_MEMORY = 1024
DEFAULT_CONTAINER_NAME = "flow-run"
DEFAULT_LOG_GROUP = "/push-pools/flow-runs"
DEFAULT_LOG_STREAM_PREFIX = "push-pools"
FARGATE_LAUNCH_TYPES = ("FARGATE", "FARGATE_SPOT")

# Fargate task sizes (Linux): CPU units -> allowed memory in MiB. From the AWS ECS developer
# guide, "Task CPU and memory"; 8 and 16 vCPU need platform version 1.4.0, the default.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


def _sizes_text() -> str:
    parts = []
    for cpu, memories in FARGATE_SIZES.items():
        if len(memories) <= 3:
            allowed = ", ".join(str(m) for m in memories)
        else:
            allowed = f"{memories[0]}-{memories[-1]} in steps of {memories[1] - memories[0]}"
        parts.append(f"cpu {cpu}: memory {allowed}")
    return "; ".join(parts)


def fargate_size_error(cpu: Any, memory: Any) -> str | None:
    """Why (cpu, memory) is not a Fargate task size, or None when it is one."""
    if isinstance(cpu, bool) or not isinstance(cpu, int):
        return f"cpu must be an integer number of CPU units (1024 = 1 vCPU), got {cpu!r}"
    if isinstance(memory, bool) or not isinstance(memory, int):
        return f"memory must be an integer number of MiB, got {memory!r}"
    allowed = FARGATE_SIZES.get(cpu)
    if allowed is None:
        return (
            f"cpu {cpu} is not a Fargate size; use one of "
            f"{', '.join(str(c) for c in FARGATE_SIZES)} (1024 = 1 vCPU). Valid pairs: "
            + _sizes_text()
        )
    if memory not in allowed:
        return (
            f"cpu {cpu} with memory {memory} MiB is not a Fargate size. Valid pairs: "
            + _sizes_text()
        )
    return None


def uses_fargate(values: dict[str, Any]) -> bool:
    """Whether these job variables run tasks on Fargate (launch type or capacity providers)."""
    strategy = values.get("capacity_provider_strategy") or []
    if strategy:
        # A strategy replaces the launch type; FARGATE and FARGATE_SPOT are the Fargate ones.
        return any(
            isinstance(item, dict)
            and str(item.get("capacityProvider", "")).upper() in FARGATE_LAUNCH_TYPES
            for item in strategy
        )
    return str(values.get("launch_type") or "FARGATE").upper() in FARGATE_LAUNCH_TYPES


def validate_job_variables(values: dict[str, Any]) -> None:
    """Refuse merged job variables ECS would refuse later, in the middle of a run.

    `values` are the merged job variables (pool defaults <- deployment <- run). JSON schema
    checks each variable alone; these rules span several: Fargate's cpu/memory table, and the
    execution role that Fargate needs to write CloudWatch logs or read secrets. The executor
    runs the same check on every submit, so a value that slipped past still fails clearly.
    """
    if not isinstance(values, dict):
        raise InvalidInput(f"job variables must be a JSON object, got {type(values).__name__}")
    if values.get("task_definition_arn"):
        # The user's own task definition fixes size, logging and secrets; ECS checked it.
        return
    problems: list[str] = []
    if uses_fargate(values):
        error = fargate_size_error(
            values.get("cpu", DEFAULT_CPU), values.get("memory", DEFAULT_MEMORY)
        )
        if error:
            problems.append(error)
        if not values.get("execution_role_arn"):
            # ECS refuses such a task definition at registration, i.e. only when a run starts.
            needs = []
            if values.get("configure_cloudwatch_logs", True):
                needs.append("CloudWatch logs (configure_cloudwatch_logs)")
            if values.get("secrets"):
                needs.append("secrets (plus secretsmanager:GetSecretValue / ssm:GetParameters)")
            if needs:
                problems.append(
                    f"Fargate tasks need an execution_role_arn for {' and '.join(needs)}; set "
                    "execution_role_arn to a role with the AmazonECSTaskExecutionRolePolicy"
                )
    if values.get("capacity_provider_strategy") and values.get("launch_type") not in (
        None,
        "FARGATE",
    ):
        # FARGATE is the default: we cannot tell it from "not set" once values are merged.
        problems.append(
            "set either launch_type or capacity_provider_strategy, not both: a capacity "
            "provider strategy replaces the launch type"
        )
    if problems:
        raise InvalidInput("; ".join(problems))


def _string_map(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {},
    }


def default_template() -> dict[str, Any]:
    """The default base job template, in Prefect's shape; a fresh dict on every call."""
    variables = [
        "image",
        "command",
        "env",
        "secrets",
        "cpu",
        "memory",
        "cluster",
        "region",
        "launch_type",
        "capacity_provider_strategy",
        "subnets",
        "security_groups",
        "assign_public_ip",
        "network_configuration",
        "execution_role_arn",
        "task_role_arn",
        "container_name",
        "labels",
        "task_definition_arn",
        "configure_cloudwatch_logs",
        "cloudwatch_log_group",
        "cloudwatch_logs_prefix",
        "cloudwatch_create_log_group",
        "cloudwatch_logs_options",
        "auto_deregister_task_definition",
        "task_start_timeout_seconds",
        "max_run_seconds",
        "aws_credentials",
        "endpoint_url",
    ]
    template: dict[str, Any] = {
        "job_configuration": {name: "{{ " + name + " }}" for name in variables},
        "variables": {
            "description": (
                "Settings for running each flow run as an AWS ECS task (Fargate by default). "
                "The push-pools server starts the task itself: no worker to deploy. Each "
                "deployment gets its own task definition, registered once and reused by all "
                "its runs until an image, size, role or logging setting changes."
            ),
            "type": "object",
            "properties": {
                "image": {
                    "title": "Image",
                    "description": (
                        "Container image that runs the flow; it needs Python, push-pools and "
                        "the flow's dependencies, e.g. "
                        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flows:2024-06-01. "
                        f"The default {DEFAULT_IMAGE!r} is a placeholder name: a code bundle "
                        "deploy runs on python:<its version>-slim with a bootstrap that "
                        "installs push-pools; otherwise build and push your own image."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_IMAGE,
                },
                "command": {
                    "title": "Command",
                    "description": (
                        "Command the container runs, split like a shell would split it. "
                        "The run's id and the API address reach it as environment "
                        "variables; keep the default unless the image needs a wrapper, e.g. "
                        "`/opt/venv/bin/python -m push_pools.engine`."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_COMMAND,
                },
                "env": _string_map(
                    "Environment Variables",
                    "Environment variables for the flow run's container, as NAME: value "
                    "strings. They are passed when the task starts (not stored in the task "
                    "definition) and merged name by name across work pool, deployment and "
                    "run. Put secrets in `secrets`, not here: task overrides are visible to "
                    "anyone allowed ecs:DescribeTasks.",
                ),
                "secrets": {
                    "title": "Secrets",
                    "description": (
                        "Environment variables whose values ECS reads at start from AWS "
                        "Secrets Manager or SSM Parameter Store, as NAME: ARN, e.g. "
                        '{"DB_PASSWORD": "arn:aws:secretsmanager:eu-west-1:123456789012:'
                        'secret:db-AbCdEf"}. The execution role must be allowed to read them.'
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string", "pattern": "^arn:"},
                    "default": {},
                },
                "cpu": {
                    "title": "CPU",
                    "description": (
                        "CPU units for the task (1024 = 1 vCPU). On Fargate it must pair "
                        "with memory: 256 (memory 512-2048), 512 (1024-4096), 1024 "
                        "(2048-8192), 2048 (4096-16384), 4096 (8192-30720), 8192 "
                        "(16384-61440 in steps of 4096), 16384 (32768-122880 in steps of "
                        "8192)."
                    ),
                    "type": "integer",
                    "minimum": 128,
                    "maximum": 16384,
                    "default": DEFAULT_CPU,
                },
                "memory": {
                    "title": "Memory (MiB)",
                    "description": (
                        "Memory for the task in MiB; on Fargate it must fit the cpu (see "
                        "cpu). A run that exceeds it is crashed with a message saying so."
                    ),
                    "type": "integer",
                    "minimum": 512,
                    "maximum": 122880,
                    "default": DEFAULT_MEMORY,
                },
                "cluster": {
                    "title": "Cluster",
                    "description": (
                        "Name or ARN of the ECS cluster to run tasks in. Leave it empty for "
                        "the account's `default` cluster."
                    ),
                    "type": "string",
                },
                "region": {
                    "title": "Region",
                    "description": (
                        "AWS region of the cluster, e.g. eu-west-1. Leave it empty to use the "
                        "credentials block's region_name, then the AWS_REGION of the server."
                    ),
                    "type": "string",
                },
                "launch_type": {
                    "title": "Launch Type",
                    "description": (
                        "FARGATE (serverless), FARGATE_SPOT (the same, cheaper, but AWS may "
                        "stop the task with two minutes' notice: the run then crashes; the "
                        "cluster needs the FARGATE_SPOT capacity provider) or EC2 "
                        "(container instances you run in the cluster). Ignored when "
                        "capacity_provider_strategy is set."
                    ),
                    "type": "string",
                    "enum": ["FARGATE", "FARGATE_SPOT", "EC2"],
                    "default": "FARGATE",
                },
                "capacity_provider_strategy": {
                    "title": "Capacity Provider Strategy",
                    "description": (
                        'Capacity providers to spread tasks over, e.g. [{"capacityProvider": '
                        '"FARGATE_SPOT", "weight": 3}, {"capacityProvider": "FARGATE", '
                        '"weight": 1}]. Replaces launch_type when set.'
                    ),
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "capacityProvider": {"type": "string", "minLength": 1},
                            "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
                            "base": {"type": "integer", "minimum": 0, "maximum": 100000},
                        },
                        "required": ["capacityProvider"],
                        "additionalProperties": False,
                    },
                    "default": [],
                },
                "subnets": {
                    "title": "Subnets",
                    "description": (
                        "Subnet IDs for the task's network interface (Fargate needs at least "
                        'one), e.g. ["subnet-0abc"]. Private subnets need a NAT gateway or '
                        "VPC endpoints to pull the image and reach the push-pools API."
                    ),
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "default": [],
                },
                "security_groups": {
                    "title": "Security Groups",
                    "description": (
                        "Security group IDs for the task; empty means the VPC's default "
                        "group. The task only needs outbound access (registry, push-pools API)."
                    ),
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "default": [],
                },
                "assign_public_ip": {
                    "title": "Assign Public IP",
                    "description": (
                        "Give the task a public IP. Needed in public subnets without a NAT "
                        "gateway, or the image cannot be pulled."
                    ),
                    "type": "boolean",
                    "default": False,
                },
                "network_configuration": {
                    "title": "Network Configuration",
                    "description": (
                        'An ECS awsvpcConfiguration object ({"subnets": [...], '
                        '"securityGroups": [...], "assignPublicIp": "ENABLED"}), as in '
                        "Prefect. When set it replaces subnets, security_groups and "
                        "assign_public_ip."
                    ),
                    "type": "object",
                },
                "execution_role_arn": {
                    "title": "Execution Role ARN",
                    "description": (
                        "IAM role ECS uses to start the task: pull the image from ECR, write "
                        "CloudWatch logs, read `secrets`. Required on Fargate with logs or "
                        "secrets."
                    ),
                    "type": "string",
                    "pattern": "^arn:",
                },
                "task_role_arn": {
                    "title": "Task Role ARN",
                    "description": (
                        "IAM role the flow's own code runs as (its AWS permissions, e.g. S3). "
                        "Leave it empty for none."
                    ),
                    "type": "string",
                    "pattern": "^arn:",
                },
                "container_name": {
                    "title": "Container Name",
                    "description": (
                        "Name of the container that runs the flow. With task_definition_arn, "
                        "it must name one of that definition's containers."
                    ),
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_-]{1,255}$",
                    "default": DEFAULT_CONTAINER_NAME,
                },
                "labels": _string_map(
                    "Labels",
                    "Key: value strings added as tags to each task, for cost allocation and "
                    "finding runs. push-pools adds its own push-pools:* tags as well.",
                ),
                "task_definition_arn": {
                    "title": "Task Definition ARN",
                    "description": (
                        "Run an existing task definition instead of one push-pools registers. "
                        "Only command and env are then applied (as task overrides); image, "
                        "cpu, memory, roles, secrets and logging come from that definition, "
                        "which push-pools never deregisters."
                    ),
                    "type": "string",
                    "pattern": "^arn:",
                },
                "configure_cloudwatch_logs": {
                    "title": "Configure CloudWatch Logs",
                    "description": (
                        "Send the container's output to CloudWatch Logs (awslogs driver). "
                        "push-pools reads it back to show the last lines of a crashed run, "
                        "even one that never reached the API."
                    ),
                    "type": "boolean",
                    "default": True,
                },
                "cloudwatch_log_group": {
                    "title": "CloudWatch Log Group",
                    "description": "Log group the container's output goes to.",
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_LOG_GROUP,
                },
                "cloudwatch_logs_prefix": {
                    "title": "CloudWatch Log Stream Prefix",
                    "description": (
                        "Prefix of each task's log stream; the stream is "
                        "<prefix>/<container name>/<task id>."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_LOG_STREAM_PREFIX,
                },
                "cloudwatch_create_log_group": {
                    "title": "Create Log Group",
                    "description": (
                        "Let ECS create the log group when it does not exist (the execution "
                        "role then needs logs:CreateLogGroup). Turn off if the group is "
                        "provisioned separately."
                    ),
                    "type": "boolean",
                    "default": True,
                },
                "cloudwatch_logs_options": {
                    "title": "CloudWatch Logs Options",
                    "description": (
                        'Extra awslogs driver options, e.g. {"mode": "non-blocking"}; '
                        "they override the ones built from the settings above."
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                },
                "auto_deregister_task_definition": {
                    "title": "Auto Deregister Task Definition",
                    "description": (
                        "Deregister the task definition when a run ends. Off by default: a "
                        "deployment's runs share one task definition, and deregistering it "
                        "makes the next run register a new revision."
                    ),
                    "type": "boolean",
                    "default": False,
                },
                "task_start_timeout_seconds": {
                    "title": "Task Start Timeout (seconds)",
                    "description": (
                        "A run whose task has not started the flow this many seconds after "
                        "the server picked it up (pulling the image included) is marked "
                        "crashed and its task stopped. The name Prefect's ECS pools use."
                    ),
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 86400,
                    "default": 600,
                },
                "max_run_seconds": {
                    "title": "Maximum Run Time (seconds)",
                    "description": (
                        "Stop the task and mark the run crashed after the flow has run this "
                        "many seconds. Leave it empty for no limit."
                    ),
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 2592000,
                },
                "aws_credentials": {
                    "title": "AWS Credentials",
                    "description": (
                        "Name of an aws-credentials block the server uses to call ECS and "
                        "CloudWatch Logs. Leave it empty to use the server's own AWS "
                        "credentials (environment, instance or task role)."
                    ),
                    "type": "string",
                    "block_type": "aws-credentials",
                },
                "endpoint_url": {
                    "title": "Endpoint URL (advanced)",
                    "description": (
                        "Send ECS, CloudWatch Logs and the other AWS calls to this URL instead "
                        "of AWS, e.g. http://127.0.0.1:5000 for an emulator such as moto or "
                        "LocalStack. Leave it empty for AWS."
                    ),
                    "type": "string",
                    "pattern": "^https?://",
                },
            },
        },
    }
    # Not a job_configuration field: the server reads the pool's value when storing bundles.
    template["variables"]["properties"][bundle_storage.VARIABLE] = bundle_storage.variable_schema()
    return template


def not_ready_reason(values: dict[str, Any]) -> str | None:
    """Why no ECS task can be started from these job variables (see PoolType.readiness_check):
    today, no region from anywhere boto3 would find one."""
    import os
    from pathlib import Path

    if values.get("region") or values.get("aws_credentials"):
        return None  # a credentials block may carry region_name; the executor says if not
    if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        return None
    config = os.environ.get("AWS_CONFIG_FILE") or str(Path("~/.aws/config").expanduser())
    if Path(config).is_file():
        return None  # a profile may name one
    return (
        "no AWS region: set the job variable 'region' (work-pool update, or "
        "--provision-infra), or AWS_REGION on the server"
    )


POOL_TYPE = pool_types.PoolType(
    name="ecs:push",
    description=(
        "Runs each flow run as an AWS ECS task (Fargate by default), started by the push-pools "
        "server itself; no worker needed."
    ),
    default_template=default_template,
    executor="push_pools.executors.ecs.executor:EcsExecutor",
    is_push=True,
    credential_slots=("aws_credentials",),
    job_variables_check="push_pools.executors.ecs.template:validate_job_variables",
    readiness_check="push_pools.executors.ecs.template:not_ready_reason",
    start_timeout_variable="task_start_timeout_seconds",
    # The task definition is kept or deregistered by auto_deregister_task_definition instead.
    keep_infrastructure_variable=None,
)
