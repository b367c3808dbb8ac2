"""A run's memory limit, as the managed sandbox sets it and as every report words it.

The sandbox enforces the limit (RLIMIT_AS) and names it to the engine in the environment, so
that a flow whose allocation fails there is reported as over its limit (Crashed), not as a
bug in the flow (Failed with a bare MemoryError).
"""

from __future__ import annotations

import os

__all__ = ["MEMORY_LIMIT_ENV", "limit_from_environment", "over_limit_message"]

MEMORY_LIMIT_ENV = "PUSH_POOLS_MEMORY_LIMIT_MIB"


def over_limit_message(mib: int) -> str:
    return f"the run used more than its memory limit of {mib} MiB"


def limit_from_environment() -> int | None:
    """The limit in MiB the sandbox set for this process, None when it set none."""
    value = os.environ.get(MEMORY_LIMIT_ENV, "")
    return int(value) if value.isdigit() else None
