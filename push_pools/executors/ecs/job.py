"""What one ECS flow run needs, parsed from the rendered job configuration; and its names.

Everything here is pure: no AWS calls, so the rules (family naming, startedBy mapping, the
registered task definition) are easy to read and to test.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from push_pools.errors import InvalidInput
from push_pools.executors import job_values
from push_pools.executors.ecs import template as ecs_template

# ECS limits: startedBy up to 36 characters, clientToken up to 64, container overrides up to
# 8192 bytes (the environment of every run goes there).
STARTED_BY_LIMIT = 36
CLIENT_TOKEN_LIMIT = 64
# The characters each takes (ECS API reference, RunTask): startedBy letters, digits, "-", "/"
# and "_"; clientToken ASCII 33-126, i.e. printable without the space.
_STARTED_BY = re.compile(rf"[A-Za-z0-9/_-]{{1,{STARTED_BY_LIMIT}}}", re.ASCII)
_CLIENT_TOKEN = re.compile(rf"[!-~]{{1,{CLIENT_TOKEN_LIMIT}}}", re.ASCII)
OVERRIDES_LIMIT = 8192
ID_PREFIX = "ecs"
INFRASTRUCTURE_ID_ENV = "PUSH_POOLS_INFRASTRUCTURE_ID"
TAG_PREFIX = "push-pools:"
MANAGED_BY_TAG = TAG_PREFIX + "managed-by"
AUTO_DEREGISTER_TAG = TAG_PREFIX + "auto-deregister"
_NOT_FAMILY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_HYPHENS = re.compile(r"-{2,}")
_CLUSTER_ARN = re.compile(r"^arn:[^:]+:ecs:([^:]+):[^:]*:cluster/(.+)$")


@dataclass(frozen=True)
class LogSettings:
    group: str
    stream_prefix: str
    create_group: bool
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Credentials:
    """The non-empty fields of a resolved aws-credentials block (see push_pools.blocks)."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    profile: str | None = None

    def fingerprint(self) -> str:
        """Tells credentials apart without keeping the secret itself as a key."""
        raw = json.dumps(
            [self.access_key_id, self.secret_access_key, self.session_token, self.profile]
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EcsJob:
    """One run's ECS settings; see ecs_template for what each variable means."""

    image: str
    command: list[str]
    env: dict[str, str]
    secrets: dict[str, str]
    cpu: int
    memory: int
    cluster: str  # as given: a name or an ARN ("default" when unset)
    region: str | None
    launch_type: str
    capacity_provider_strategy: list[dict[str, Any]]
    awsvpc: dict[str, Any] | None
    execution_role_arn: str | None
    task_role_arn: str | None
    container_name: str
    labels: dict[str, str]
    task_definition_arn: str | None
    logs: LogSettings | None
    auto_deregister: bool
    credentials: Credentials | None
    endpoint_url: str | None

    @classmethod
    def from_configuration(cls, config: dict[str, Any]) -> EcsJob:
        """Parse a rendered job configuration; InvalidInput naming the variable otherwise."""
        if not isinstance(config, dict):
            raise InvalidInput(f"the ECS job configuration must be an object, got {config!r}")
        prefect_keys = sorted({"task_definition", "task_run_request"} & set(config))
        if prefect_keys:
            # Silently ignoring them would run the placeholder image with default settings.
            raise InvalidInput(
                f"the work pool's job configuration has Prefect's ECS worker layout "
                f"({', '.join(prefect_keys)}), which the ecs:push executor does not read; "
                "start from push-pools' own ecs:push default template, which keeps Prefect's "
                "variable names (image, cpu, memory, cluster, ...)"
            )
        values = {k: v for k, v in config.items() if v is not None}
        # The same cross-field rules the server applies at deploy time: a run whose variables
        # reached us some other way fails with the same message, before any AWS call.
        ecs_template.validate_job_variables(values)
        launch_type = job_values.text(values, "launch_type", "FARGATE").upper()
        if launch_type not in ("FARGATE", "FARGATE_SPOT", "EC2"):
            raise InvalidInput(
                f"job variable 'launch_type' must be FARGATE, FARGATE_SPOT or EC2, got "
                f"{launch_type!r}"
            )
        logs = None
        if job_values.flag(values, "configure_cloudwatch_logs", True):
            logs = LogSettings(
                group=job_values.text(
                    values, "cloudwatch_log_group", ecs_template.DEFAULT_LOG_GROUP
                ),
                stream_prefix=job_values.text(
                    values, "cloudwatch_logs_prefix", ecs_template.DEFAULT_LOG_STREAM_PREFIX
                ),
                create_group=job_values.flag(values, "cloudwatch_create_log_group", True),
                options=job_values.string_map(values, "cloudwatch_logs_options"),
            )
        cluster = job_values.text(values, "cluster", "default")
        region = job_values.text(values, "region", "") or None
        cluster_arn = _CLUSTER_ARN.match(cluster)
        if cluster_arn and region is None:
            region = cluster_arn.group(1)
        return cls(
            image=job_values.text(values, "image", ecs_template.DEFAULT_IMAGE),
            command=job_values.command(values.get("command"), ecs_template.DEFAULT_COMMAND),
            env=job_values.string_map(values, "env"),
            secrets=job_values.string_map(values, "secrets"),
            cpu=_integer(values, "cpu", ecs_template.DEFAULT_CPU),
            memory=_integer(values, "memory", ecs_template.DEFAULT_MEMORY),
            cluster=cluster,
            region=region,
            launch_type=launch_type,
            capacity_provider_strategy=_strategy(values),
            awsvpc=_awsvpc(values),
            execution_role_arn=job_values.text(values, "execution_role_arn", "") or None,
            task_role_arn=job_values.text(values, "task_role_arn", "") or None,
            container_name=job_values.text(
                values, "container_name", ecs_template.DEFAULT_CONTAINER_NAME
            ),
            labels=job_values.string_map(values, "labels"),
            task_definition_arn=job_values.text(values, "task_definition_arn", "") or None,
            logs=logs,
            auto_deregister=job_values.flag(values, "auto_deregister_task_definition", False),
            credentials=_credentials(values.get("aws_credentials")),
            endpoint_url=job_values.text(values, "endpoint_url", "") or None,
        )

    @property
    def cluster_name(self) -> str:
        match = _CLUSTER_ARN.match(self.cluster)
        return match.group(2) if match else self.cluster

    @property
    def uses_fargate(self) -> bool:
        return ecs_template.uses_fargate(
            {
                "launch_type": self.launch_type,
                "capacity_provider_strategy": self.capacity_provider_strategy,
            }
        )

    def placement(self) -> dict[str, Any]:
        """run_task's launchType or capacityProviderStrategy (ECS takes one, not both)."""
        if self.capacity_provider_strategy:
            return {"capacityProviderStrategy": self.capacity_provider_strategy}
        if self.launch_type == "FARGATE_SPOT":
            # Not a launch type to ECS: Spot is the FARGATE_SPOT capacity provider.
            return {"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]}
        return {"launchType": self.launch_type}

    def network_configuration(self) -> dict[str, Any] | None:
        if self.awsvpc is None:
            if self.uses_fargate:
                raise InvalidInput(
                    "Fargate tasks need a network: set the job variable 'subnets' (subnet IDs "
                    "of the cluster's VPC), or 'network_configuration'"
                )
            return None
        return {"awsvpcConfiguration": self.awsvpc}

    def log_configuration(self, region: str) -> dict[str, Any] | None:
        if self.logs is None:
            return None
        options = {
            "awslogs-group": self.logs.group,
            "awslogs-region": region,
            "awslogs-stream-prefix": self.logs.stream_prefix,
        }
        if self.logs.create_group:
            options["awslogs-create-group"] = "true"
        options.update(self.logs.options)
        return {"logDriver": "awslogs", "options": options}

    def task_definition(
        self, *, region: str, pool_name: str, deployment_id: str | None
    ) -> dict[str, Any]:
        """The register_task_definition request for this job, family included.

        The family ends in a hash of everything else in the request, so equal settings map to
        one family (found again by any dispatcher, no cache needed) and any change to image,
        size, roles, logging, secrets or command gets a family of its own.
        """
        container: dict[str, Any] = {
            "name": self.container_name,
            "image": self.image,
            "essential": True,
            "command": self.command,
            # The one container owns the whole task. Also: moto answers run_task with a 500
            # when no container declares memory.
            "memory": self.memory,
        }
        if self.secrets:
            container["secrets"] = [
                {"name": name, "valueFrom": arn} for name, arn in sorted(self.secrets.items())
            ]
        log_configuration = self.log_configuration(region)
        if log_configuration:
            container["logConfiguration"] = log_configuration
        request: dict[str, Any] = {
            "requiresCompatibilities": ["FARGATE"] if self.uses_fargate else ["EC2"],
            "networkMode": "awsvpc" if self.uses_fargate or self.awsvpc else "bridge",
            "cpu": str(self.cpu),
            "memory": str(self.memory),
            "containerDefinitions": [container],
            "tags": [
                {"key": MANAGED_BY_TAG, "value": "push-pools"},
                {"key": TAG_PREFIX + "pool", "value": pool_name or "-"},
                {"key": TAG_PREFIX + "deployment-id", "value": deployment_id or "-"},
                {"key": AUTO_DEREGISTER_TAG, "value": "true" if self.auto_deregister else "false"},
            ],
        }
        if self.execution_role_arn:
            request["executionRoleArn"] = self.execution_role_arn
        if self.task_role_arn:
            request["taskRoleArn"] = self.task_role_arn
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
        deployment_part = (deployment_id or "adhoc").replace("-", "")[:8]
        family = f"{family_prefix(pool_name)}{deployment_part}-{digest}"
        return {"family": family, **request}


def family_prefix(pool_name: str) -> str:
    """How every task-definition family push-pools registers for this pool begins.

    The provisioner's IAM policy scopes registering and tagging task definitions to
    `<prefix>*`, so the two must agree: both call this. The pool part never contains "--" nor
    ends in "-", so the "--" after it keeps pool "a" from matching pool "a-b"'s families.
    """
    part = _HYPHENS.sub("-", _NOT_FAMILY_CHARS.sub("-", pool_name or ""))[:64].strip("-")
    return f"push-pools-{part or 'pool'}--"


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class TaskRef:
    """What an infrastructure id says: where the task is and the name it was started under."""

    region: str
    cluster: str
    name: str

    @property
    def infrastructure_id(self) -> str:
        return f"{ID_PREFIX}:{self.region}:{self.cluster}:{self.name}"

    @property
    def started_by(self) -> str:
        return started_by_for(self.name)


def parse_infrastructure_id(infrastructure_id: str) -> TaskRef | None:
    """The TaskRef of `ecs:<region>:<cluster>:<name>`; None for anything else."""
    if not isinstance(infrastructure_id, str):
        return None
    parts = infrastructure_id.split(":", 3)
    if len(parts) != 4 or parts[0] != ID_PREFIX or not all(parts[1:]):
        return None
    return TaskRef(region=parts[1], cluster=parts[2], name=parts[3])


def started_by_for(name: str) -> str:
    """ECS `startedBy` for an infrastructure name: the name itself when ECS takes it as is (36
    characters at most, of the allowed ones), else "pp-" and the first 33 hex digits of its
    SHA-256.

    Names are `pp-<run id>-<attempt>` (41+ characters), so in practice the hash: truncating
    would drop the attempt number and make attempt 2 adopt attempt 1's task. The full name is
    also on the task as the tag push-pools:infrastructure-name, for people.
    """
    if _STARTED_BY.fullmatch(name):
        return name
    return "pp-" + hashlib.sha256(name.encode()).hexdigest()[: STARTED_BY_LIMIT - 3]


def client_token_for(name: str) -> str:
    """run_task's idempotency token: the infrastructure name when ECS takes it as is (64
    characters at most, ASCII 33-126), else the 64 hex digits of its SHA-256.

    A function of the name alone, so a submit retried by any dispatcher sends the same token
    and ECS starts the task once (for 24 hours, per cluster); the next attempt of a run has
    another name, hence another token.
    """
    if _CLIENT_TOKEN.fullmatch(name):
        return name
    return hashlib.sha256(name.encode()).hexdigest()


# --------------------------------------------------------------------------- parsing helpers


def _integer(values: dict[str, Any], name: str, default: int) -> int:
    value = values.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"job variable '{name}' must be an integer, got {value!r}")
    return value


def _strategy(values: dict[str, Any]) -> list[dict[str, Any]]:
    value = values.get("capacity_provider_strategy") or []
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and item.get("capacityProvider") for item in value
    ):
        raise InvalidInput(
            "job variable 'capacity_provider_strategy' must be a list of objects with a "
            f"'capacityProvider', got {value!r}"
        )
    return [dict(item) for item in value]


def _awsvpc(values: dict[str, Any]) -> dict[str, Any] | None:
    network = values.get("network_configuration")
    if network:
        if not isinstance(network, dict):
            raise InvalidInput(
                f"job variable 'network_configuration' must be an object, got {network!r}"
            )
        # Prefect's shape is the awsvpcConfiguration itself; accept the wrapped form too.
        inner = network.get("awsvpcConfiguration", network)
        if not isinstance(inner, dict) or not inner.get("subnets"):
            raise InvalidInput(
                "job variable 'network_configuration' needs 'subnets', e.g. {\"subnets\": "
                '["subnet-0abc"], "securityGroups": ["sg-0abc"], "assignPublicIp": '
                '"DISABLED"}'
            )
        return dict(inner)
    subnets = values.get("subnets") or []
    if not subnets:
        return None
    groups = values.get("security_groups") or []
    for name, items in (("subnets", subnets), ("security_groups", groups)):
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise InvalidInput(f"job variable '{name}' must be a list of IDs, got {items!r}")
    awsvpc: dict[str, Any] = {
        "subnets": list(subnets),
        "assignPublicIp": "ENABLED"
        if job_values.flag(values, "assign_public_ip", False)
        else "DISABLED",
    }
    if groups:
        awsvpc["securityGroups"] = list(groups)
    return awsvpc


def _credentials(value: Any) -> Credentials | None:
    """The resolved aws-credentials block (a dict), or None for the server's own credentials."""
    if value is None:
        return None
    if not isinstance(value, dict):
        # An unresolved block name means the caller rendered without a resolver; never treat
        # the name as a key.
        raise InvalidInput(
            "job variable 'aws_credentials' reached the ECS executor unresolved; it must be "
            "the name of an aws-credentials block, resolved by the server"
        )

    def field_value(name: str) -> str | None:
        raw = value.get(name)
        return (str(raw).strip() or None) if raw is not None else None

    return Credentials(
        access_key_id=field_value("aws_access_key_id"),
        secret_access_key=field_value("aws_secret_access_key"),
        session_token=field_value("aws_session_token"),
        region=field_value("region_name"),
        profile=field_value("profile_name"),
    )
