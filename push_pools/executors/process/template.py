"""The `process` pool type's default base job template (stdlib only: the CLI loads it)."""

from __future__ import annotations

from typing import Any

from push_pools.pool_types import PoolType

__all__ = ["POOL_TYPE", "default_template"]


def default_template() -> dict[str, Any]:
    return {
        "job_configuration": {
            "command": "{{ command }}",
            "env": "{{ env }}",
            "labels": "{{ labels }}",
            "name": "{{ name }}",
            "stream_output": "{{ stream_output }}",
            "working_dir": "{{ working_dir }}",
        },
        "variables": {
            "description": "Settings for running each flow run as a local process of the worker.",
            "type": "object",
            "properties": {
                "command": {
                    "title": "Command",
                    "description": (
                        "Command that starts the flow run. Leave it empty to have the worker run "
                        "`python -m push_pools.engine` with the worker's own Python interpreter; "
                        "set it only if the flow needs another interpreter or a wrapper, e.g. "
                        "`/opt/venv/bin/python -m push_pools.engine`."
                    ),
                    "type": "string",
                },
                "env": {
                    "title": "Environment Variables",
                    "description": (
                        "Environment variables to set for the flow run process, as NAME: value "
                        "strings. Values from the work pool, the deployment and the run are "
                        "merged name by name, so a run can add or change one variable without "
                        "repeating the others."
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                },
                "labels": {
                    "title": "Labels",
                    "description": (
                        "Key: value string labels attached to the infrastructure that runs the "
                        "flow, for finding and filtering runs. Labels set on a deployment or run "
                        "replace the work pool's labels as a whole."
                    ),
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                },
                "name": {
                    "title": "Name",
                    "description": (
                        "Name given to the infrastructure (here, the process) created for a "
                        "flow run. Leave it empty to let the worker choose one."
                    ),
                    "type": "string",
                },
                "stream_output": {
                    "title": "Stream Output",
                    "description": (
                        "Copy the flow run process's stdout and stderr to the worker's output "
                        "while it runs. Turn off to keep the worker's console quiet."
                    ),
                    "type": "boolean",
                    "default": True,
                },
                "working_dir": {
                    "title": "Working Directory",
                    "description": (
                        "Directory the flow run process starts in. Leave it empty to start in a "
                        "fresh temporary directory."
                    ),
                    "type": "string",
                    "format": "path",
                },
            },
        },
    }


POOL_TYPE = PoolType(
    name="process",
    description="Runs each flow run as a subprocess on the machine of a polling worker.",
    default_template=default_template,
    executor="push_pools.executors.process.executor:ProcessExecutor",
    is_push=False,
)
