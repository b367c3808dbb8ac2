"""The `managed` work-pool type: runs on the server's own host, no worker to deploy.

Imported by pool_types when a type is first looked up; standard library only, like the registry.
"""

from __future__ import annotations

from typing import Any

from push_pools import pool_types

__all__ = ["POOL_TYPE", "default_template"]


def default_template() -> dict[str, Any]:
    """The default base job template, in Prefect's shape; a fresh dict on every call."""
    return {
        "job_configuration": {
            "command": "{{ command }}",
            "env": "{{ env }}",
            "pip_packages": "{{ pip_packages }}",
            "cpu": "{{ cpu }}",
            "memory": "{{ memory }}",
            "timeout_seconds": "{{ timeout_seconds }}",
            "start_timeout_seconds": "{{ start_timeout_seconds }}",
            "keep_infrastructure": "{{ keep_infrastructure }}",
        },
        "variables": {
            "description": (
                "Settings for running each flow run on the push-pools server's own host, in a "
                "sandbox directory with its own working directory and, if packages are given, "
                "its own cached virtual environment."
            ),
            "type": "object",
            "properties": {
                "pip_packages": {
                    "title": "Pip Packages",
                    "description": (
                        "Requirements to install for the flow run, e.g. ['pandas==2.2.2']. "
                        "They go into a virtual environment that is built once per distinct "
                        "set and reused by later runs; push_pools and its dependencies stay "
                        "importable, and these packages take precedence over them. A failed "
                        "install fails the run with the installer's last output lines."
                    ),
                    "type": "array",
                    # No leading "-": an entry must not reach the installer as an option.
                    "items": {"type": "string", "minLength": 1, "pattern": "^[^-]"},
                    "default": [],
                },
                "env": {
                    "title": "Environment Variables",
                    "description": (
                        "Environment variables for the flow run process, as NAME: value "
                        "strings. The process starts from a minimal environment (PATH, LANG, "
                        "HOME and TMPDIR inside the sandbox), not the server's. Values from the "
                        "work pool, the deployment and the run are merged name by name. "
                        "PIP_* variables (e.g. PIP_INDEX_URL) also apply to installing "
                        "pip_packages."
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                },
                "cpu": {
                    "title": "CPU",
                    "description": (
                        "CPU cores for the flow run. Advisory: the process is pinned to the "
                        "first ceil(cpu) cores of the host (CPU affinity) but not throttled "
                        "within them. Leave it empty to use every core."
                    ),
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 64,
                },
                "memory": {
                    "title": "Memory (MiB)",
                    "description": (
                        "Memory limit in MiB for each process of the flow run, enforced as a "
                        "limit on virtual address space (RLIMIT_AS), which is larger than the "
                        "memory in use: allow headroom, 256 or more for the engine itself. A "
                        "run that exceeds it fails with a message saying so. Leave it empty "
                        "for no limit."
                    ),
                    "type": "integer",
                    "minimum": 16,
                    "maximum": 262144,
                },
                "timeout_seconds": {
                    "title": "Timeout (seconds)",
                    "description": (
                        "Stop the flow run process after it has run this many seconds "
                        "(SIGTERM, then SIGKILL 10 s later); the run is marked crashed with a "
                        "message saying it timed out. Installing pip_packages does not count. "
                        "Leave it empty for no timeout."
                    ),
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 604800,
                },
                "start_timeout_seconds": {
                    "title": "Start Timeout (seconds)",
                    "description": (
                        "A flow run that has not started this many seconds after the server "
                        "picked it up (including the time to install pip_packages) is marked "
                        "crashed and its sandbox is stopped."
                    ),
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 86400,
                    "default": 600,
                },
                "keep_infrastructure": {
                    "title": "Keep Infrastructure",
                    "description": (
                        "Keep the run's sandbox directory (working directory, output.log, "
                        "result.json) after the run ends, for debugging. By default it is "
                        "removed once the run is final."
                    ),
                    "type": "boolean",
                    "default": False,
                },
                "command": {
                    "title": "Command",
                    "description": (
                        "Command that starts the flow run. Leave it empty to run "
                        "`python -m push_pools.engine` with the run's environment's "
                        "interpreter; `python` in a custom command also means that interpreter."
                    ),
                    "type": "string",
                },
            },
        },
    }


POOL_TYPE = pool_types.PoolType(
    name="managed",
    description=(
        "Runs each flow run on the push-pools server's own host, in a sandbox with its own "
        "cached virtual environment; no worker needed."
    ),
    default_template=default_template,
    executor="push_pools.executors.managed.executor:ManagedExecutor",
    is_push=True,
)
