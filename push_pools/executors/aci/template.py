"""The `azure-container-instance:push` work-pool type: the server runs each flow run as an Azure
Container Instances container group.

Imported by pool_types when a type is first looked up, so it is standard library only, like the
registry. Variable names are those of Prefect's ACI worker where it has one (image, command,
env, labels, name, cpu, memory, subscription_id, resource_group_name, identities,
image_registry, subnet_ids, dns_servers, aci_credentials, task_start_timeout_seconds,
keep_container_group), so job variables users bring from Prefect keep their meaning. The
provisioner (provisioners/azure) fills the defaults of subscription_id, resource_group_name,
location, identities, image_registry and aci_credentials.
"""

from __future__ import annotations

from typing import Any

from push_pools import bundle_storage, pool_types

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_CPU",
    "DEFAULT_IMAGE",
    "DEFAULT_MEMORY",
    "DEFAULT_START_TIMEOUT",
    "POOL_TYPE",
    "VARIABLES",
    "default_template",
]

# A stock image: it has Python only. A code bundle deploy (the default for this pool) records
# python:<its version>-slim and the bootstrap command on the deployment, which installs
# push-pools at run start (deploy/stock_image.py); an image of one's own skips that.
DEFAULT_IMAGE = "python:3.12-slim"
DEFAULT_COMMAND = "python -m push_pools.engine"
DEFAULT_CPU = 1.0
DEFAULT_MEMORY = 1.0
DEFAULT_START_TIMEOUT = 240

VARIABLES = (
    "image",
    "command",
    "env",
    "labels",
    "name",
    "cpu",
    "memory",
    "subscription_id",
    "resource_group_name",
    "location",
    "identities",
    "image_registry",
    "subnet_ids",
    "dns_servers",
    "aci_credentials",
    "task_start_timeout_seconds",
    "keep_container_group",
)


def _string_list(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "default": [],
    }


def default_template() -> dict[str, Any]:
    """The default base job template, in Prefect's shape; a fresh dict on every call."""
    template: dict[str, Any] = {
        "job_configuration": {name: "{{ " + name + " }}" for name in VARIABLES},
        "variables": {
            "description": (
                "Settings for running each flow run as an Azure Container Instances container "
                "group. The push-pools server creates the group itself (no worker to deploy), "
                "one per run, named after the run, and deletes it when the run is over."
            ),
            "type": "object",
            "properties": {
                "image": {
                    "title": "Image",
                    "description": (
                        "Container image that runs the flow, e.g. myregistry.azurecr.io/etl:v3. "
                        "It needs Python, push-pools and the flow's dependencies; the default "
                        f"{DEFAULT_IMAGE!r} has Python only: a code bundle deploy runs it with a "
                        "bootstrap that installs push-pools."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_IMAGE,
                },
                "command": {
                    "title": "Command",
                    "description": (
                        "Command the container runs, split like a shell would split it. The "
                        "run's id and the API address reach it as environment variables; keep "
                        "the default unless the image needs a wrapper."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "default": DEFAULT_COMMAND,
                },
                "env": {
                    "title": "Environment Variables",
                    "description": (
                        "Environment variables for the flow run's container, as NAME: value "
                        "strings, merged name by name across work pool, deployment and run. "
                        "Anyone who may read the container group can read them; the run's API "
                        "token is passed as a secure value, which Azure never shows."
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                },
                "labels": {
                    "title": "Labels",
                    "description": (
                        "Tags added to each container group, as key: value strings, for cost "
                        "allocation and finding runs; push-pools adds its own push-pools-* tags."
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                },
                "name": {
                    "title": "Name",
                    "description": (
                        "Prefix of each container group's name, made lowercase with '-' for "
                        "other characters and cut to 20; the rest is the run's id and attempt. "
                        "Leave it empty for pp-<run id>-<attempt>."
                    ),
                    "type": "string",
                },
                "cpu": {
                    "title": "CPU",
                    "description": (
                        "CPU cores for the container, from 0.1 to 4 in steps of 0.1 (ACI's "
                        "standard limit per container group in most regions)."
                    ),
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "default": DEFAULT_CPU,
                },
                "memory": {
                    "title": "Memory (GB)",
                    "description": (
                        "Memory for the container in GB, from 0.1 to 16 in steps of 0.1. A run "
                        "that exceeds it is killed by Azure."
                    ),
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "default": DEFAULT_MEMORY,
                },
                "subscription_id": {
                    "title": "Subscription ID",
                    "description": (
                        "Azure subscription the container groups are created in. Leave it "
                        "empty to use the azure-credentials block's subscription_id."
                    ),
                    "type": "string",
                },
                "resource_group_name": {
                    "title": "Resource Group Name",
                    "description": "Resource group the container groups are created in.",
                    "type": "string",
                },
                "location": {
                    "title": "Location",
                    "description": (
                        "Azure location of the container groups, e.g. westeurope. Leave it "
                        "empty for the resource group's location."
                    ),
                    "type": "string",
                },
                "identities": _string_list(
                    "Identities",
                    "Resource ids of user-assigned managed identities the container runs as "
                    "(its Azure permissions). The server's credentials need the Managed "
                    "Identity Operator role on each.",
                ),
                "image_registry": {
                    "title": "Image Registry",
                    "description": (
                        "The private registry the image comes from and the user-assigned "
                        'identity that pulls it: {"registry_url": "myregistry.azurecr.io", '
                        '"identity": "<identity resource id>"} (the identity needs AcrPull on '
                        "the registry). Leave it empty for public images."
                    ),
                    "type": ["object", "null"],
                    "properties": {
                        "registry_url": {"type": "string", "minLength": 1},
                        "identity": {"type": "string", "minLength": 1},
                    },
                    "required": ["registry_url", "identity"],
                    "default": None,
                },
                "subnet_ids": _string_list(
                    "Subnet IDs",
                    "Resource ids of virtual-network subnets (delegated to "
                    "Microsoft.ContainerInstance/containerGroups) the container joins. Leave it "
                    "empty for a public network.",
                ),
                "dns_servers": _string_list(
                    "DNS Servers",
                    "DNS server addresses for a container on a virtual network.",
                ),
                "aci_credentials": {
                    "title": "Azure Credentials",
                    "description": (
                        "Name of an azure-credentials block (a service principal) the server "
                        "uses to create, watch and delete container groups. Leave it empty to "
                        "use the server's own identity (AZURE_CLIENT_ID / AZURE_TENANT_ID / "
                        "AZURE_CLIENT_SECRET, or its managed identity). The block stays on the "
                        "server: it never reaches the container."
                    ),
                    "type": "string",
                    "block_type": "azure-credentials",
                },
                "task_start_timeout_seconds": {
                    "title": "Task Start Timeout (seconds)",
                    "description": (
                        "A container group still pending (pulling its image, waiting for "
                        "capacity) this many seconds after it was created is deleted and its "
                        "run crashed with Azure's last event."
                    ),
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 86400,
                    "default": DEFAULT_START_TIMEOUT,
                },
                "keep_container_group": {
                    "title": "Keep Container Group",
                    "description": (
                        "Keep each finished container group (for its logs and events) instead "
                        "of deleting it when the run is over."
                    ),
                    "type": "boolean",
                    "default": False,
                },
            },
        },
    }
    # Not a job_configuration field: the server reads the pool's value when storing bundles.
    template["variables"]["properties"][bundle_storage.VARIABLE] = bundle_storage.variable_schema()
    return template


def not_ready_reason(values: dict[str, Any]) -> str | None:
    """Why no container group can be made from these job variables (PoolType.readiness_check):
    no resource group, or no subscription from the variables or a credentials block."""
    missing = []
    if not values.get("subscription_id") and not values.get("aci_credentials"):
        missing.append("'subscription_id' (or 'aci_credentials' with one)")
    if not values.get("resource_group_name"):
        missing.append("'resource_group_name'")
    if not missing:
        return None
    return (
        f"no Azure {'subscription or resource group' if len(missing) == 2 else 'place'} for "
        f"container groups: set the job variable {' and '.join(missing)} (work-pool update, or "
        "--provision-infra)"
    )


POOL_TYPE = pool_types.PoolType(
    name="azure-container-instance:push",
    description=(
        "Runs each flow run as an Azure Container Instances container group, created by the "
        "push-pools server itself; no worker needed."
    ),
    default_template=default_template,
    executor="push_pools.executors.aci.executor:AciExecutor",
    is_push=True,
    job_variables_check="push_pools.executors.aci.checks:validate_job_variables",
    credential_slots=("aci_credentials",),
    readiness_check="push_pools.executors.aci.template:not_ready_reason",
    start_timeout_variable="task_start_timeout_seconds",
    max_run_variable=None,
    keep_infrastructure_variable="keep_container_group",
)
