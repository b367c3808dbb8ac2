"""What one ACI flow run needs, parsed from the rendered job configuration; its names and the
container group it becomes.

Pure: no Azure calls and no Azure imports, so the rules (naming, what the group carries, which
variable is secure) are easy to read and to test.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from push_pools.errors import InvalidInput
from push_pools.executors import job_values
from push_pools.executors.aci import checks, template

ID_PREFIX = "aci"
INFRASTRUCTURE_ID_ENV = "PUSH_POOLS_INFRASTRUCTURE_ID"
# The run's API token: passed as a secureValue, which ACI never shows on a GET.
SECURE_ENV = frozenset({"PUSH_POOLS_API_KEY"})
CONTAINER_NAME = "flow-run"
MANAGED_BY_TAG = "managed-by"
POOL_TAG = "push-pools-pool"
DEPLOYMENT_TAG = "push-pools-deployment"
FLOW_RUN_TAG = "push-pools-flow-run"
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_PREFIX_LIMIT = 20
# ACI's container group names: 1-63 lowercase letters, digits and single '-'.
_NAME_LIMIT = 63


@dataclass(frozen=True)
class BlockCredentials:
    """The non-empty fields of a resolved azure-credentials block (see push_pools.blocks)."""

    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    subscription_id: str | None = None

    def fingerprint(self) -> str:
        """Tells credentials apart without keeping the secret itself as a dictionary key."""
        raw = json.dumps([self.tenant_id, self.client_id, self.client_secret, self.subscription_id])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def as_block(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


@dataclass(frozen=True)
class AciJob:
    """One run's ACI settings; see template for what each variable means."""

    image: str
    command: list[str]
    env: dict[str, str]
    labels: dict[str, str]
    name_prefix: str | None
    cpu: float
    memory: float
    subscription_id: str | None
    resource_group: str | None
    location: str | None
    identities: tuple[str, ...]
    registry_url: str | None
    registry_identity: str | None
    subnet_ids: tuple[str, ...]
    dns_servers: tuple[str, ...]
    credentials: BlockCredentials | None
    start_timeout: int
    keep_container_group: bool

    @classmethod
    def from_configuration(cls, config: dict[str, Any]) -> AciJob:
        """Parse a rendered job configuration; InvalidInput naming the variable otherwise."""
        if not isinstance(config, dict):
            raise InvalidInput(f"the ACI job configuration must be an object, got {config!r}")
        if "arm_template" in config:
            # Silently ignoring it would run the default image with default settings.
            raise InvalidInput(
                "the work pool's job configuration has Prefect's ACI worker layout "
                "(arm_template), which the azure-container-instance:push executor does not "
                "read; start from push-pools' own default template, which keeps Prefect's "
                "variable names (image, cpu, memory, resource_group_name, ...)"
            )
        values = {k: v for k, v in config.items() if v is not None}
        checks.validate_job_variables(values)
        registry = values.get("image_registry") or None
        if registry is not None and (
            not isinstance(registry, dict)
            or not isinstance(registry.get("registry_url"), str)
            or not isinstance(registry.get("identity"), str)
        ):
            raise InvalidInput(
                "job variable 'image_registry' must be "
                '{"registry_url": "<login server>", "identity": "<identity resource id>"}, '
                f"got {registry!r}"
            )
        timeout = values.get("task_start_timeout_seconds", template.DEFAULT_START_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise InvalidInput(
                "job variable 'task_start_timeout_seconds' must be a positive integer, got "
                f"{timeout!r}"
            )
        return cls(
            image=job_values.text(values, "image", template.DEFAULT_IMAGE),
            command=job_values.command(values.get("command"), template.DEFAULT_COMMAND),
            env=job_values.string_map(values, "env"),
            labels=job_values.string_map(values, "labels"),
            name_prefix=job_values.text(values, "name", "") or None,
            cpu=float(values.get("cpu", template.DEFAULT_CPU)),
            memory=float(values.get("memory", template.DEFAULT_MEMORY)),
            subscription_id=job_values.text(values, "subscription_id", "") or None,
            resource_group=job_values.text(values, "resource_group_name", "") or None,
            location=job_values.text(values, "location", "") or None,
            identities=_string_list(values, "identities"),
            registry_url=registry["registry_url"].strip() if registry else None,
            registry_identity=registry["identity"].strip() if registry else None,
            subnet_ids=_string_list(values, "subnet_ids"),
            dns_servers=_string_list(values, "dns_servers"),
            credentials=_credentials(values.get("aci_credentials")),
            start_timeout=timeout,
            keep_container_group=job_values.flag(values, "keep_container_group", False),
        )

    def group_name(self, infrastructure_name: str) -> str:
        """The container group's name: the run's infrastructure name, after the optional prefix.

        Derived from the run and its attempt only, so a retried create is the same group.
        """
        base = _slug(infrastructure_name)
        if self.name_prefix:
            base = f"{_slug(self.name_prefix)[:_PREFIX_LIMIT].strip('-')}-{base}"
        return base[:_NAME_LIMIT].strip("-")

    def run_env(self, engine_env: dict[str, str], infrastructure_id: str) -> dict[str, str]:
        """The container's environment: the job's env, then the engine's, which wins."""
        env = dict(self.env)
        env.update(engine_env)
        env[INFRASTRUCTURE_ID_ENV] = infrastructure_id
        return dict(sorted(env.items()))

    def group_body(
        self,
        *,
        location: str,
        engine_env: dict[str, str],
        infrastructure_id: str,
        pool_name: str,
        deployment_id: str | None,
        flow_run_id: str,
    ) -> dict[str, Any]:
        """The container group as ARM takes it (Microsoft.ContainerInstance/containerGroups)."""
        environment = [
            {"name": name, "secureValue": value}
            if name in SECURE_ENV
            else {"name": name, "value": value}
            for name, value in self.run_env(engine_env, infrastructure_id).items()
        ]
        container = {
            "name": CONTAINER_NAME,
            "properties": {
                "image": self.image,
                "command": self.command,
                "environmentVariables": environment,
                "resources": {"requests": {"cpu": self.cpu, "memoryInGB": self.memory}},
            },
        }
        properties: dict[str, Any] = {
            "containers": [container],
            "osType": "Linux",
            "restartPolicy": "Never",
        }
        identities = list(self.identities)
        if self.registry_url and self.registry_identity:
            properties["imageRegistryCredentials"] = [
                {"server": self.registry_url, "identity": self.registry_identity}
            ]
            # ACI pulls with an identity only if the group has it.
            if self.registry_identity.lower() not in {i.lower() for i in identities}:
                identities.append(self.registry_identity)
        if self.subnet_ids:
            properties["subnetIds"] = [{"id": subnet} for subnet in self.subnet_ids]
        if self.dns_servers:
            properties["dnsConfig"] = {"nameServers": list(self.dns_servers)}
        tags = dict(self.labels)
        tags.update(
            {
                MANAGED_BY_TAG: "push-pools",
                POOL_TAG: pool_name or "pool",
                DEPLOYMENT_TAG: deployment_id or "none",
                FLOW_RUN_TAG: flow_run_id,
            }
        )
        body: dict[str, Any] = {"location": location, "tags": tags, "properties": properties}
        if identities:
            body["identity"] = {
                "type": "UserAssigned",
                "userAssignedIdentities": {identity: {} for identity in identities},
            }
        return body


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class GroupRef:
    """What an infrastructure id says: where the container group is, and its name."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def infrastructure_id(self) -> str:
        return f"{ID_PREFIX}:{self.subscription_id}:{self.resource_group}:{self.name}"


def parse_infrastructure_id(infrastructure_id: str) -> GroupRef | None:
    """The GroupRef of `aci:<subscription>:<resource group>:<group name>`; None otherwise."""
    if not isinstance(infrastructure_id, str):
        return None
    parts = infrastructure_id.split(":", 3)
    if len(parts) != 4 or parts[0] != ID_PREFIX or not all(parts[1:]):
        return None
    return GroupRef(subscription_id=parts[1], resource_group=parts[2], name=parts[3])


def _slug(text: str) -> str:
    return _NOT_NAME_CHARS.sub("-", text.lower()).strip("-") or "pp"


# --------------------------------------------------------------------------- parsing helpers


def _string_list(values: dict[str, Any], name: str) -> tuple[str, ...]:
    value = values.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"job variable '{name}' must be a list of strings, got {value!r}")
    return tuple(item.strip() for item in value if item.strip())


def _credentials(value: Any) -> BlockCredentials | None:
    """The resolved azure-credentials block; None (the server's own identity) when unset."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        # The dispatcher resolves the block into the slot; a bare name means nobody did.
        raise InvalidInput(
            f"the credentials block {value!r} was not resolved; the "
            "azure-container-instance:push executor takes its credentials from the server's "
            "dispatcher"
        )
    if not isinstance(value, dict):
        raise InvalidInput("job variable 'aci_credentials' must name an azure-credentials block")

    def field(name: str) -> str | None:
        found = value.get(name)
        return str(found).strip() or None if found is not None else None

    return BlockCredentials(
        tenant_id=field("tenant_id"),
        client_id=field("client_id"),
        client_secret=field("client_secret"),
        subscription_id=field("subscription_id"),
    )
