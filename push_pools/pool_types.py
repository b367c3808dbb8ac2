"""The one registry of work-pool types: name, default base job template, executor.

Imported by the CLI on every start, so it uses the standard library only; executors are named
by dotted path and imported lazily by whoever runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from push_pools.errors import AlreadyExists, InvalidInput

__all__ = ["PoolType", "check_job_variables", "get", "names", "not_ready_reason", "register"]


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
    # "module.path:function" taking the job variables a run would get (pool defaults, maybe
    # a deployment's on top) and answering why no job can be made from them, or None. No cloud
    # call and no SDK import: pool lists call it for every push pool. A pool whose defaults
    # fail it is NOT_READY with that reason.
    readiness_check: str | None = None
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


def not_ready_reason(pool_type: str, values: dict[str, Any]) -> str | None:
    """Why a push pool of this type cannot make a job from `values` (its job-variable check
    fails, or its readiness check names what is missing); None when it can."""
    try:
        kind = get(pool_type)
    except InvalidInput as exc:
        return exc.message
    try:
        check_job_variables(pool_type, values)
    except InvalidInput as exc:
        return exc.message
    if not kind.readiness_check:
        return None
    import importlib

    module_name, _, function_name = kind.readiness_check.partition(":")
    reason: str | None = getattr(importlib.import_module(module_name), function_name)(values)
    return reason


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
