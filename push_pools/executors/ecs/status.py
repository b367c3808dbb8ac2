"""From a described ECS task to an InfrastructureStatus: state, exit code, reason, message.

ECS reports why a task stopped in `stopCode` (a documented enum) and in `stoppedReason` /
the container's `reason`, which start with an error code such as "CannotPullContainerError:".
We read those codes, never the free text after them.
"""

from __future__ import annotations

import re
from typing import Any

from push_pools.executors.base import InfrastructureState, InfrastructureStatus

STARTING = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
# After the essential container exits the task still deactivates for a while (ENI release).
STOPPING = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING"})

# stopCode -> our short reason word (base.InfrastructureStatus.reason).
STOP_CODE_REASONS = {
    "EssentialContainerExited": "exited",
    "UserInitiated": "stopped",
    "TaskFailedToStart": "start_failed",
    "SpotInterruption": "spot_interruption",
    "TerminationNotice": "terminated",
    "ServiceSchedulerInitiated": "stopped",
}
_ERROR_CODE = re.compile(r"^\s*([A-Z][A-Za-z]+Error)\b")


def error_code(text: str | None) -> str | None:
    """The leading ECS error code of a reason ("CannotPullContainerError: ..."), if any."""
    match = _ERROR_CODE.match(text or "")
    return match.group(1) if match else None


def flow_container(task: dict[str, Any], container_name: str | None) -> dict[str, Any] | None:
    """The container that runs the flow: the one named, else the one our run's environment
    override names (a definition may have sidecars), else the first."""
    containers = task.get("containers") or []
    if container_name is None:
        overrides = (task.get("overrides") or {}).get("containerOverrides") or []
        container_name = overrides[0].get("name") if overrides else None
    for container in containers:
        if container.get("name") == container_name:
            return dict(container)
    return dict(containers[0]) if containers else None


def task_status(task: dict[str, Any], container_name: str | None) -> InfrastructureStatus:
    """The status of one task from describe_tasks (without last_lines; the caller adds them)."""
    last = str(task.get("lastStatus") or "")
    container = flow_container(task, container_name) or {}
    container_stopped = container.get("lastStatus") == "STOPPED"
    if last in STARTING:
        return InfrastructureStatus(InfrastructureState.STARTING)
    if last == "RUNNING" or (last in STOPPING and not container_stopped):
        return InfrastructureStatus(InfrastructureState.RUNNING)
    if last not in STOPPING and last != "STOPPED":
        # A status ECS added after this was written: not gone, so say it still runs.
        return InfrastructureStatus(InfrastructureState.RUNNING)
    # The exit code only means something once the container itself has stopped.
    exit_code = container.get("exitCode") if container_stopped else None
    reason, message = _why(task, container)
    return InfrastructureStatus(
        InfrastructureState.EXITED,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        reason=reason,
        message=message,
    )


def _why(task: dict[str, Any], container: dict[str, Any]) -> tuple[str, str | None]:
    stop_code = str(task.get("stopCode") or "")
    stopped_reason = str(task.get("stoppedReason") or "").strip()
    container_reason = str(container.get("reason") or "").strip()
    code = error_code(container_reason) or error_code(stopped_reason)
    detail = container_reason or stopped_reason
    if code == "CannotPullContainerError":
        image = container.get("image") or "its image"
        return "image_pull", (
            f"ECS could not pull the image {image!r} ({detail}); check the image name and tag, "
            "that the execution role may pull from its registry, and that the task's subnets "
            "reach the registry (NAT gateway, VPC endpoints or assign_public_ip)"
        )
    if code == "OutOfMemoryError":
        memory = task.get("memory")
        limit = f" of {memory} MiB" if memory else ""
        return "memory", f"exceeded its memory limit{limit}; raise the memory job variable"
    if code == "ResourceInitializationError":
        return "start_failed", (
            f"ECS could not prepare the task ({detail}); check that the execution role may "
            "read the secrets and write the CloudWatch log group, and the subnets' routes"
        )
    if code in ("CannotStartContainerError", "CannotCreateContainerError"):
        return "start_failed", (
            f"the container could not start ({detail}); check the command job variable and "
            "that the image has it"
        )
    reason = STOP_CODE_REASONS.get(stop_code, "exited" if stop_code == "" else stop_code)
    if stop_code == "SpotInterruption":
        return reason, f"AWS reclaimed its Fargate Spot capacity ({detail or stop_code})"
    if stop_code == "UserInitiated":
        return reason, f"its ECS task was stopped: {stopped_reason or 'StopTask was called'}"
    if stop_code == "TaskFailedToStart":
        return reason, f"ECS could not start the task ({detail or stop_code})"
    if stop_code in ("TerminationNotice", "ServiceSchedulerInitiated"):
        return reason, f"ECS stopped the task ({detail or stop_code})"
    # The essential container exited by itself: the exit code says it all.
    return reason, None
