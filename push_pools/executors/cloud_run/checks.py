"""Job-variable checks for `cloud-run:push`: what Cloud Run would refuse, said at deploy time.

Standard library only (the server runs it on every deployment change). The executor runs the same
check on every submit, so a value that reached a run some other way fails with the same words.

CPU and memory rules are those of Cloud Run jobs ("Configure CPU limits for jobs" and "Configure
memory limits for jobs" in Google's documentation): 0.08 to 1 vCPU in steps of 0.001, or 1, 2,
4, 6 or 8; memory from 128 MiB up to a maximum that grows with the CPUs.
"""

from __future__ import annotations

import re
from typing import Any

from push_pools.errors import InvalidInput

from .network import vpc_errors
from .template import DEFAULT_CPU, DEFAULT_MEMORY, DEFAULT_REGION

__all__ = [
    "env_name_error",
    "label_error",
    "parse_cpu",
    "parse_memory",
    "resources_error",
    "secret_reference",
    "validate_job_variables",
]

MIB = 1024 * 1024
GIB = 1024 * MIB
_UNITS = {"M": 10**6, "Mi": MIB, "G": 10**9, "Gi": GIB}
_MEMORY = re.compile(r"^(\d+)(M|Mi|G|Gi)$")
_CPU = re.compile(r"^(?:(\d+)m|(\d+(?:\.\d{1,3})?))$")
WHOLE_CPUS = (1, 2, 4, 6, 8)
# Whole vCPUs -> (least, most) memory in bytes.
MEMORY_RANGE = {
    1: (128 * MIB, 4 * GIB),
    2: (128 * MIB, 8 * GIB),
    4: (2 * GIB, 16 * GIB),
    6: (4 * GIB, 24 * GIB),
    8: (4 * GIB, 32 * GIB),
}
MIN_MILLICPU = 80
# Set by Cloud Run in every task; a job that sets one is refused.
RESERVED_ENV_PREFIX = "CLOUD_RUN_"
_ENV_NAME = re.compile(r"^[^=\s]+$")
# Google's label rules: keys start with a lowercase letter; both at most 63 characters of
# lowercase letters, digits, '_' and '-'.
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_SECRET_SHORT = re.compile(r"^([A-Za-z0-9_-]{1,255})(?::([A-Za-z0-9_-]+))?$")
_SECRET_FULL = re.compile(r"^(projects/[^/]+/secrets/[^/]+)(?:/versions/([^/]+))?$")

RESOURCES_HELP = (
    'cpu is "80m" to "1000m" (0.08 to 1 vCPU) or "1", "2", "4", "6", "8"; memory per vCPU: '
    "1: 128Mi-4Gi, 2: 128Mi-8Gi, 4: 2Gi-16Gi, 6: 4Gi-24Gi, 8: 4Gi-32Gi; below 1 vCPU at most "
    "1Gi, and below 0.5 vCPU at most 512Mi"
)


def parse_cpu(value: Any) -> int:
    """Millicpus of a Cloud Run cpu string ("1000m", "2", "0.5"); InvalidInput otherwise."""
    text = value.strip() if isinstance(value, str) else None
    match = _CPU.match(text or "")
    if text is None or match is None:
        raise InvalidInput(
            f'cpu must be a string such as "1", "2" or "500m", got {value!r}; {RESOURCES_HELP}'
        )
    millis, number = match.groups()
    if millis is not None:
        return int(millis)
    whole, _, fraction = number.partition(".")
    return int(whole) * 1000 + int((fraction + "000")[:3])


def parse_memory(value: Any) -> int:
    """Bytes of a Cloud Run memory string ("512Mi", "2Gi", "1G"); InvalidInput otherwise."""
    match = _MEMORY.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(
            f'memory must be a number with a unit M, Mi, G or Gi, e.g. "512Mi" or "2Gi", got '
            f"{value!r}"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def _memory_text(size: int) -> str:
    if size % GIB == 0:
        return f"{size // GIB}Gi"
    return f"{size / MIB:g}Mi"


def resources_error(cpu: Any, memory: Any) -> str | None:
    """Why Cloud Run would refuse this cpu/memory pair for a job; None when it accepts it."""
    try:
        millis = parse_cpu(cpu)
        size = parse_memory(memory)
    except InvalidInput as exc:
        return exc.message
    if millis < MIN_MILLICPU:
        return f"cpu {cpu!r} is below Cloud Run's minimum of 0.08 vCPU (80m); {RESOURCES_HELP}"
    if millis > 1000 and (millis % 1000 or millis // 1000 not in WHOLE_CPUS):
        return f"cpu {cpu!r} is not a Cloud Run size; {RESOURCES_HELP}"
    whole = max(1, millis // 1000)
    least, most = MEMORY_RANGE[whole]
    if millis < 500:
        most = 512 * MIB
    elif millis < 1000:
        most = GIB
    if not least <= size <= most:
        return (
            f"memory {memory!r} does not fit cpu {cpu!r}: Cloud Run allows "
            f"{_memory_text(least)} to {_memory_text(most)} with it; {RESOURCES_HELP}"
        )
    return None


def env_name_error(name: str) -> str | None:
    if not _ENV_NAME.match(name):
        return f"environment variable name {name!r} is empty or has '=' or spaces"
    if name.startswith(RESERVED_ENV_PREFIX):
        return f"environment variable {name} is reserved: Cloud Run sets {RESERVED_ENV_PREFIX}*"
    return None


def label_error(key: str, value: str) -> str | None:
    if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
        return (
            f"label {key}={value!r} is not a Google Cloud label: keys start with a lowercase "
            "letter, and keys and values are at most 63 lowercase letters, digits, '_' or '-'"
        )
    return None


def secret_reference(value: str) -> tuple[str, str] | None:
    """(secret, version) of an env_from_secrets value; None when it is not one."""
    full = _SECRET_FULL.match(value)
    if full:
        return full.group(1), full.group(2) or "latest"
    short = _SECRET_SHORT.match(value)
    if short:
        return short.group(1), short.group(2) or "latest"
    return None


def validate_job_variables(values: dict[str, Any]) -> None:
    """Refuse merged job variables Cloud Run would refuse later, when a run starts.

    `values` are the merged job variables (pool defaults <- deployment <- run); JSON schema has
    checked each alone, these rules span several or need parsing.
    """
    if not isinstance(values, dict):
        raise InvalidInput(f"job variables must be a JSON object, got {type(values).__name__}")
    problems: list[str] = []
    cpu = values.get("cpu") or DEFAULT_CPU
    memory = values.get("memory") or DEFAULT_MEMORY
    error = resources_error(cpu, memory)
    if error:
        problems.append(error)
    env = values.get("env") or {}
    secrets = values.get("env_from_secrets") or {}
    for mapping in (env, secrets):
        if isinstance(mapping, dict):
            problems += [e for e in map(env_name_error, map(str, mapping)) if e]
    if isinstance(env, dict) and isinstance(secrets, dict):
        both = sorted(set(env) & set(secrets))
        if both:
            problems.append(
                f"{', '.join(both)} set in both env and env_from_secrets; keep one of them"
            )
    if isinstance(secrets, dict):
        for name, reference in secrets.items():
            if not isinstance(reference, str) or secret_reference(reference) is None:
                problems.append(
                    f"env_from_secrets {name}: {reference!r} is not a secret; give its name "
                    '("db-password"), "name:version" or "projects/P/secrets/NAME[/versions/V]"'
                )
    labels = values.get("labels") or {}
    if isinstance(labels, dict):
        problems += [e for e in (label_error(str(k), str(v)) for k, v in labels.items()) if e]
    region = values.get("region") or DEFAULT_REGION
    problems += vpc_errors(values, region if isinstance(region, str) else DEFAULT_REGION)
    if problems:
        raise InvalidInput("; ".join(problems))
