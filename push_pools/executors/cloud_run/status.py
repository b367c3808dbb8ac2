"""A Cloud Run execution's state, as push-pools' InfrastructureStatus.

Pure: reads the fields of a run_v2.Execution (and of its failed task), makes no call. Conditions
and counts come from the Cloud Run v2 reference: an execution is finished once its `Completed`
condition is SUCCEEDED or FAILED (or it has a completion time); the counts say how its tasks
ended.
"""

from __future__ import annotations

import re
from typing import Any

from push_pools.executors.base import InfrastructureState, InfrastructureStatus

_EXIT_CODE = re.compile(r"exit code (-?\d+)")
# google.cloud.run_v2.Condition.State values, by name (compared as names: no Google import).
SUCCEEDED = "CONDITION_SUCCEEDED"
FAILED = "CONDITION_FAILED"


def completed_condition(execution: Any) -> Any | None:
    for condition in execution.conditions:
        if condition.type_ == "Completed":
            return condition
    return None


def is_finished(execution: Any) -> bool:
    condition = completed_condition(execution)
    state = _name(condition.state) if condition is not None else ""
    return state in (SUCCEEDED, FAILED) or "completion_time" in execution


def is_failed(execution: Any) -> bool:
    return is_finished(execution) and (
        execution.failed_count > 0 or execution.cancelled_count > 0 or _failed_condition(execution)
    )


def execution_status(execution: Any, task_exit_code: int | None = None) -> InfrastructureStatus:
    """The status of one execution (without last_lines; the caller adds them).

    `task_exit_code` is the failed task's last attempt's exit code, when the caller read it.
    """
    if not is_finished(execution):
        started = execution.running_count > 0 or "start_time" in execution
        return InfrastructureStatus(
            InfrastructureState.RUNNING if started else InfrastructureState.STARTING
        )
    condition = completed_condition(execution)
    message = str(condition.message) if condition is not None else ""
    reason = _name(condition.execution_reason) if condition is not None else ""
    if execution.cancelled_count > 0 or reason == "CANCELLED":
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            exit_code=task_exit_code,
            reason="cancelled",
            message="its Cloud Run execution was cancelled",
        )
    if not is_failed(execution):
        return InfrastructureStatus(InfrastructureState.EXITED, exit_code=0, reason="exited")
    exit_code = task_exit_code
    if exit_code is None:
        found = _EXIT_CODE.search(message)
        exit_code = int(found.group(1)) if found else None
    if "timeout" in message.lower():
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            exit_code=exit_code,
            reason="timeout",
            message=(
                "Cloud Run stopped it at the job variable 'timeout' (its maximum run time): "
                + (message or "the configured timeout was reached")
            ),
        )
    if exit_code is not None and reason in ("NON_ZERO_EXIT_CODE", ""):
        # The container exited by itself: its exit code says it all, as for other clouds.
        return InfrastructureStatus(
            InfrastructureState.EXITED, exit_code=exit_code, reason="exited"
        )
    return InfrastructureStatus(
        InfrastructureState.EXITED,
        exit_code=exit_code,
        reason="start_failed" if exit_code is None else "exited",
        message=f"its Cloud Run execution failed: {message or 'no reason given'}",
    )


def _failed_condition(execution: Any) -> bool:
    condition = completed_condition(execution)
    return condition is not None and _name(condition.state) == FAILED


def _name(value: Any) -> str:
    """An enum's name; "" for an unset one (*_UNSPECIFIED, *_UNDEFINED)."""
    name = str(getattr(value, "name", value) or "")
    return "" if name.endswith(("_UNSPECIFIED", "_UNDEFINED")) else name
