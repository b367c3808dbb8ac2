"""The one registry of work-pool types: name, default base job template, executor.

Imported by the CLI on every start, so it uses the standard library only; executors are named
by dotted path and imported lazily by whoever runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from push_pools.errors import AlreadyExists, InvalidInput

__all__ = ["PoolType", "check_job_variables", "get", "names", "register"]


@dataclass(frozen=True)
class PoolType:
    name: str
    description: str
    # A factory rather than a dict so no caller can mutate the shared default.
    default_template: Callable[[], dict[str, Any]]
    # "module.path:ClassName"; a string so that importing the registry stays cheap.
    executor: str
    # False for types whose runs are picked up by a polling worker.
    is_push: bool
    # "module.path:function" checking merged job variables beyond what JSON schema can say
    # (e.g. Fargate's cpu/memory pairs); raises InvalidInput. Imported only when used.
    job_variables_check: str | None = None
    # Top-level job_configuration fields that take a credentials block (ECS: "aws_credentials").
    # Blocks are resolved into these fields only, as their whole value, for the executor to build
    # its cloud client from; a template that puts a block anywhere else is refused.
    credential_slots: tuple[str, ...] = ()
    # The job variables the dispatcher reads for a push type, in the type's own words (Prefect's
    # where Prefect has one): seconds a run may take to start, seconds it may run (None: no
    # limit from the dispatcher, e.g. when the cloud enforces it), and whether to keep the
    # finished run's infrastructure instead of cleaning it up.
    start_timeout_variable: str | None = "start_timeout_seconds"
    max_run_variable: str | None = "max_run_seconds"
    keep_infrastructure_variable: str | None = "keep_infrastructure"


def check_job_variables(pool_type: str, values: dict[str, Any]) -> None:
    """Run the pool type's own job-variable check, if it has one."""
    check = get(pool_type).job_variables_check
    if check:
        import importlib

        module_name, _, function_name = check.partition(":")
        getattr(importlib.import_module(module_name), function_name)(values)


_REGISTRY: dict[str, PoolType] = {}


def register(pool_type: PoolType) -> None:
    """Add a work-pool type. Registering the very same type again is a no-op (module reloads)."""
    existing = _REGISTRY.get(pool_type.name)
    if existing is not None and existing != pool_type:
        raise AlreadyExists(
            f"work pool type '{pool_type.name}' is already registered (executor "
            f"{existing.executor}); pick a different name for the new type"
        )
    _REGISTRY[pool_type.name] = pool_type


# Pool types come from the `push_pools.pool_types` entry-point group: each entry names a
# PoolType object (in a stdlib-only module), ours as much as a separately installed package's.
# Loaded on first lookup, not at import, so `push-pools --help` pays nothing for them.
ENTRY_POINT_GROUP = "push_pools.pool_types"
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    import logging
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            pool_type = entry.load()
        except Exception as exc:  # a broken plug-in must not take the other types down
            pool_type = exc
        if not isinstance(pool_type, PoolType):
            logging.getLogger("push_pools").warning(
                "work pool type %r is left out: entry point %r in group %r must name a "
                "push_pools.pool_types.PoolType (%s)",
                entry.name,
                entry.value,
                ENTRY_POINT_GROUP,
                pool_type if isinstance(pool_type, Exception) else type(pool_type).__name__,
            )
            continue
        register(pool_type)
    _builtins_loaded = True


def get(name: str) -> PoolType:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInput(
            f"unknown work pool type {name!r}; choose one of: {', '.join(names())}"
        ) from None


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _process_template() -> dict[str, Any]:
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


PROCESS = PoolType(
    name="process",
    description="Runs each flow run as a subprocess on the machine of a polling worker.",
    default_template=_process_template,
    executor="push_pools.executors.process:ProcessExecutor",
    is_push=False,
)
