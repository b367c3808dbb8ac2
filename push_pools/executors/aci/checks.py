"""Job-variable checks for `azure-container-instance:push`: what ACI would refuse, said at deploy
time.

Standard library only (the server runs it on every deployment change). The executor runs the same
check on every submit, so a value that reached a run some other way fails with the same words.

Resource rules are ACI's standard per-location limits for a Linux container group (4 CPU cores
and 16 GB in most regions; "Resource availability by region" in Azure's documentation), with
cpu and memory in steps of 0.1 as the API takes them. A location with smaller or larger limits
still answers for itself when the group is created.
"""

from __future__ import annotations

import re
from typing import Any

from push_pools.errors import InvalidInput

from .template import DEFAULT_CPU, DEFAULT_MEMORY

__all__ = ["MAX_CPU", "MAX_MEMORY_GB", "resources_error", "validate_job_variables"]

MAX_CPU = 4.0
MAX_MEMORY_GB = 16.0
STEP = 0.1
RESOURCES_HELP = (
    f"ACI runs a container group with 0.1 to {MAX_CPU:g} CPU cores and 0.1 to "
    f"{MAX_MEMORY_GB:g} GB of memory, each in steps of 0.1"
)
# ACI: letters, digits and '_', not starting with a digit, as a shell would accept.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Azure tags: names up to 512 characters without < > % & \ ? /, values up to 256.
_TAG_FORBIDDEN = re.compile(r"[<>%&\\?/]")


def _on_step(value: float) -> bool:
    return abs(value / STEP - round(value / STEP)) < 1e-6


def _quantity(value: Any, name: str, most: float, unit: str) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{name} must be a number of {unit}, got {value!r}; {RESOURCES_HELP}"
    number = float(value)
    if not STEP - 1e-9 <= number <= most + 1e-9:
        return None, (
            f"{name} {number:g} is beyond ACI's limits of 0.1 to {most:g} {unit} per container "
            f"group; {RESOURCES_HELP}"
        )
    if not _on_step(number):
        return None, f"{name} {number:g} is not a multiple of 0.1 {unit}; {RESOURCES_HELP}"
    return number, None


def resources_error(cpu: Any, memory: Any) -> str | None:
    """Why ACI would refuse this cpu/memory for a container group; None when it accepts it."""
    problems = [
        error
        for _, error in (
            _quantity(cpu, "cpu", MAX_CPU, "cores"),
            _quantity(memory, "memory", MAX_MEMORY_GB, "GB"),
        )
        if error
    ]
    return "; ".join(problems) or None


def validate_job_variables(values: dict[str, Any]) -> None:
    """Refuse merged job variables ACI would refuse later, when a run starts.

    `values` are the merged job variables (pool defaults <- deployment <- run); JSON schema has
    checked each alone, these rules need more than a schema says.
    """
    if not isinstance(values, dict):
        raise InvalidInput(f"job variables must be a JSON object, got {type(values).__name__}")
    problems: list[str] = []
    cpu = values.get("cpu")
    memory = values.get("memory")
    error = resources_error(
        DEFAULT_CPU if cpu is None else cpu, DEFAULT_MEMORY if memory is None else memory
    )
    if error:
        problems.append(error)
    env = values.get("env") or {}
    if isinstance(env, dict):
        problems += [
            f"environment variable name {name!r} is not one ACI takes: letters, digits and "
            "'_', not starting with a digit"
            for name in map(str, env)
            if not _ENV_NAME.match(name)
        ]
    labels = values.get("labels") or {}
    if isinstance(labels, dict):
        problems += [
            f"label {key}={value!r} is not an Azure tag: names are at most 512 characters "
            "without < > % & \\ ? /, values at most 256 characters"
            for key, value in ((str(k), str(v)) for k, v in labels.items())
            if not key or len(key) > 512 or _TAG_FORBIDDEN.search(key) or len(value) > 256
        ]
    if problems:
        raise InvalidInput("; ".join(problems))
