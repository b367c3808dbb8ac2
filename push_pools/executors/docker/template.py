"""The `docker` pool type's default base job template and job-variable check (stdlib only).

Variable names follow Prefect's Docker worker where the concept is the same (image,
image_pull_policy, env, command, networks, network_mode, volumes, mem_limit, auto_remove,
privileged, labels, stream_output, name), so job variables users bring from Prefect keep their
meaning.
"""

from __future__ import annotations

import re
from typing import Any

from push_pools import pool_types
from push_pools.errors import InvalidInput

__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_IMAGE",
    "PULL_POLICIES",
    "POOL_TYPE",
    "default_template",
    "validate_job_variables",
]

# A stock image: it has no push-pools, so a deployment sets `image` to one that does (or the
# deploy's bundle bootstrap installs it); the default keeps a pool usable for trying things out.
DEFAULT_IMAGE = "python:3.12-slim"
DEFAULT_COMMAND = "python -m push_pools.engine"
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
_MEMORY = re.compile(r"[0-9]+[bkmg]?", re.IGNORECASE)


def _string_map(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {},
    }


def default_template() -> dict[str, Any]:
    names = (
        "auto_remove",
        "command",
        "env",
        "image",
        "image_pull_policy",
        "labels",
        "mem_limit",
        "name",
        "network_mode",
        "networks",
        "privileged",
        "stream_output",
        "volumes",
    )
    return {
        "job_configuration": {name: "{{ " + name + " }}" for name in names},
        "variables": {
            "description": "Settings for running each flow run in a container of a Docker engine.",
            "type": "object",
            "properties": {
                "image": {
                    "title": "Image",
                    "description": (
                        "Image the container runs. A deploy that names none runs its code "
                        "bundle on the stock python:X.Y-slim image, which installs push-pools "
                        "from the server at start; an image of your own (`deploy --image`) "
                        "must have push-pools and the flow's dependencies installed."
                    ),
                    "type": "string",
                    "default": DEFAULT_IMAGE,
                },
                "image_pull_policy": {
                    "title": "Image Pull Policy",
                    "description": (
                        "When the worker pulls the image: IfNotPresent (only when the engine "
                        "does not have it), Always (before every run, to pick up a moved tag), "
                        "Never (use only what the engine has; a missing image crashes the run)."
                    ),
                    "type": "string",
                    "enum": list(PULL_POLICIES),
                    "default": "IfNotPresent",
                },
                "command": {
                    "title": "Command",
                    "description": (
                        "Command the container starts with. Leave it empty to run "
                        f"`{DEFAULT_COMMAND}` with the image's python."
                    ),
                    "type": "string",
                },
                "env": _string_map(
                    "Environment Variables",
                    "Environment variables for the container, as NAME: value strings, merged "
                    "name by name from the work pool, the deployment and the run. The worker "
                    "adds what the engine needs (run id, API URL, the run's own token).",
                ),
                "labels": _string_map(
                    "Labels",
                    "Key: value labels put on the container, next to the ones the worker adds "
                    "(io.push-pools.flow-run-id, io.push-pools.flow-run-name).",
                ),
                "name": {
                    "title": "Name",
                    "description": (
                        "Container name. Leave it empty for one made from the run's name and "
                        "id; a name already in use gets the run id appended."
                    ),
                    "type": "string",
                },
                "networks": {
                    "title": "Networks",
                    "description": "Docker networks the container joins (they must exist).",
                    "type": "array",
                    "items": {"type": "string"},
                    "default": [],
                },
                "network_mode": {
                    "title": "Network Mode",
                    "description": (
                        "Network mode (bridge, host, none, container:NAME). Not with `networks`. "
                        "Left empty, a worker talking to a server on 127.0.0.1 uses `host`, "
                        "because a bridged container cannot reach the host's loopback."
                    ),
                    "type": "string",
                },
                "volumes": {
                    "title": "Volumes",
                    "description": (
                        "Mounts as HOST_PATH_OR_VOLUME:CONTAINER_PATH[:ro|rw] strings, "
                        "e.g. /data/in:/in:ro."
                    ),
                    "type": "array",
                    "items": {"type": "string"},
                    "default": [],
                },
                "mem_limit": {
                    "title": "Memory Limit",
                    "description": (
                        "Most memory the container may use: bytes, or a number with b, k, m "
                        "or g (e.g. 512m, 2g). Empty: no limit."
                    ),
                    "type": "string",
                },
                "auto_remove": {
                    "title": "Auto Remove",
                    "description": (
                        "Remove the container once the run has finished and the worker has "
                        "read its exit code and output. Off: it stays for `docker logs`."
                    ),
                    "type": "boolean",
                    "default": False,
                },
                "privileged": {
                    "title": "Privileged",
                    "description": (
                        "Give the container extended privileges on the host (all devices and "
                        "capabilities). Off unless the flow really needs it."
                    ),
                    "type": "boolean",
                    "default": False,
                },
                "stream_output": {
                    "title": "Stream Output",
                    "description": (
                        "Copy the container's output to the worker's console while it runs."
                    ),
                    "type": "boolean",
                    "default": True,
                },
            },
        },
    }


def validate_job_variables(values: dict[str, Any]) -> None:
    """What JSON schema cannot say: memory sizes, volume specs, networks with a network mode."""
    mem_limit = values.get("mem_limit")
    if mem_limit not in (None, "") and not _MEMORY.fullmatch(str(mem_limit).strip()):
        raise InvalidInput(
            f"job variable 'mem_limit' must be bytes or a number with b, k, m or g "
            f"(e.g. 512m), got {mem_limit!r}"
        )
    for volume in values.get("volumes") or []:
        parts = str(volume).split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]) or not parts[1].startswith("/"):
            raise InvalidInput(
                f"job variable 'volumes': {volume!r} must be SOURCE:/container/path[:ro|rw]"
            )
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            raise InvalidInput(
                f"job variable 'volumes': {volume!r} ends in {parts[2]!r}; use ro or rw"
            )
    if values.get("networks") and values.get("network_mode"):
        raise InvalidInput(
            "job variables 'networks' and 'network_mode' cannot both be set: the container "
            "joins the networks in bridge mode"
        )


POOL_TYPE = pool_types.PoolType(
    name="docker",
    description=(
        "Runs each flow run in a container on a Docker engine, started by a polling worker."
    ),
    default_template=default_template,
    executor="push_pools.executors.docker.executor:DockerExecutor",
    is_push=False,
    job_variables_check="push_pools.executors.docker.template:validate_job_variables",
)
