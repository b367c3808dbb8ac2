"""A container group's instance view, as push-pools' InfrastructureStatus.

Pure: reads the fields of an azure-mgmt-containerinstance ContainerGroup, makes no call. States
are ACI's: the group's provisioningState (Pending, Creating, Succeeded, Failed) and
instanceView.state (Pending, Running, Succeeded, Failed, Stopped); the container's currentState
(Waiting, Running, Terminated, with an exit code once terminated) and its events, where ACI says
why an image did not pull.
"""

from __future__ import annotations

from typing import Any

from push_pools.executors.base import InfrastructureState, InfrastructureStatus

__all__ = ["group_status", "is_pending", "last_event"]

# A container waiting in one of these never starts without a change: its image does not pull.
_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


def _container(group: Any) -> Any | None:
    containers = list(getattr(group, "containers", None) or [])
    return containers[0] if containers else None


def _current(group: Any) -> Any | None:
    container = _container(group)
    view = getattr(container, "instance_view", None) if container is not None else None
    return getattr(view, "current_state", None)


def _group_state(group: Any) -> str:
    view = getattr(group, "instance_view", None)
    return str(getattr(view, "state", None) or "")


def last_event(group: Any) -> str:
    """ACI's most telling event: the first warning of the container (a pull failure names the
    image and the registry's answer), else the latest event of the container or the group."""
    container = _container(group)
    events = list(getattr(getattr(container, "instance_view", None), "events", None) or [])
    events += list(getattr(getattr(group, "instance_view", None), "events", None) or [])
    warnings = [e for e in events if str(getattr(e, "type", "")) == "Warning" and e.message]
    if warnings:
        return str(warnings[0].message)
    messages = [str(e.message) for e in events if getattr(e, "message", None)]
    return messages[-1] if messages else ""


def is_pending(group: Any) -> bool:
    """Whether the group's container has not started yet (and has not failed to)."""
    current = _current(group)
    state = str(getattr(current, "state", None) or "")
    return state in ("", "Waiting") and _group_state(group) in ("", "Pending", "Running")


def group_status(
    group: Any, *, start_timeout: float | None = None, pending_for: float | None = None
) -> InfrastructureStatus:
    """The status of one container group (without last_lines; the caller adds them).

    `pending_for`: seconds since the group was created, when the caller knows; a group still
    pending after `start_timeout` of them is reported as failed to start, with ACI's event.
    """
    current = _current(group)
    container_state = str(getattr(current, "state", None) or "")
    group_state = _group_state(group)
    provisioning = str(getattr(group, "provisioning_state", None) or "")
    if container_state == "Terminated":
        exit_code = getattr(current, "exit_code", None)
        if group_state == "Stopped":
            return InfrastructureStatus(
                InfrastructureState.EXITED,
                exit_code=exit_code,
                reason="cancelled",
                message="its container group was stopped",
            )
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            exit_code=int(exit_code) if exit_code is not None else None,
            reason="exited",
        )
    if group_state == "Stopped":
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            reason="cancelled",
            message="its container group was stopped before its container started",
        )
    detail = str(getattr(current, "detail_status", None) or "")
    if provisioning == "Failed" or group_state == "Failed" or detail in _PULL_FAILURES:
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            reason="start_failed",
            message=(
                "its container did not start: " + (last_event(group) or detail or "ACI failed")
            ),
        )
    if container_state == "Running":
        return InfrastructureStatus(InfrastructureState.RUNNING)
    if start_timeout is not None and pending_for is not None and pending_for > start_timeout:
        event = last_event(group)
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            reason="start_timeout",
            message=(
                f"its container group was still pending after {start_timeout:g} s (the job "
                "variable 'task_start_timeout_seconds')"
                + (f"; Azure's last event: {event}" if event else "")
            ),
        )
    return InfrastructureStatus(InfrastructureState.STARTING)
