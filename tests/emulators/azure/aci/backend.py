"""Container groups' store and the rules ACI applies to creates, updates, stop, start, delete."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
from typing import Any

from tests.emulators.azure.aci.models import ContainerGroup, ContainerInstance
from tests.emulators.azure.aci.runner import AciControls, GroupRunner, PullCheck
from tests.emulators.azure.lro import FAILED, IN_PROGRESS, SUCCEEDED
from tests.emulators.azure.wire import ArmError
from tests.emulators.containers import signal_group

__all__ = ["AciBackend"]

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_OS_TYPES = ("Linux", "Windows")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def validate_definition(
    name: str, location: str, properties: Any, limits: tuple[float, float]
) -> None:
    """ACI's checks on a submitted group, before anything is created."""
    if not isinstance(properties, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content was invalid.")
    containers = properties.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ArmError(
            400,
            "ContainerGroupMissingContainers",
            f"The container group '{name}' must have at least one container.",
        )
    seen = set()
    for container in containers:
        cname = container.get("name") if isinstance(container, dict) else None
        cprops = container.get("properties") if isinstance(container, dict) else None
        if not cname or not isinstance(cprops, dict) or not cprops.get("image"):
            raise ArmError(
                400, "InvalidContainerDefinition", "Each container needs a name and an image."
            )
        if cname.lower() in seen:
            raise ArmError(
                400,
                "DuplicateContainerName",
                f"The container group '{name}' has duplicate container name '{cname}'.",
            )
        seen.add(cname.lower())
        requests = (cprops.get("resources") or {}).get("requests") or {}
        if "cpu" not in requests or "memoryInGB" not in requests:
            raise ArmError(
                400,
                "MissingContainerResourceRequests",
                f"The resource requests of container '{cname}' must be specified.",
            )
    os_type = properties.get("osType")
    if os_type not in _OS_TYPES:
        raise ArmError(
            400,
            "InvalidOsType",
            f"The 'osType' of container group '{name}' must be one of 'Linux, Windows'.",
        )
    policy = properties.get("restartPolicy", "Always")
    if policy not in _RESTART_POLICIES:
        raise ArmError(
            400,
            "InvalidRestartPolicy",
            f"The restart policy '{policy}' is invalid. Valid values: Always, OnFailure, Never.",
        )
    cpu = sum(float(c["properties"]["resources"]["requests"]["cpu"]) for c in containers)
    memory = sum(float(c["properties"]["resources"]["requests"]["memoryInGB"]) for c in containers)
    max_cpu, max_memory = limits
    if cpu > max_cpu or memory > max_memory:
        network = " virtual network" if properties.get("subnetIds") else ""
        raise ArmError(
            409,
            "ServiceUnavailable",
            f"The requested resource is not available in the location '{location}' at this "
            "moment. Please retry with a different resource request or in another location. "
            f"Resource requested: '{_number(cpu)}' CPU '{_number(memory)}' GB memory "
            f"'{os_type}' OS{network}",
        )


def _immutable(properties: dict[str, Any]) -> str:
    """What an update may not change: ACI needs a delete and create for these."""
    containers = {
        c["name"].lower(): (c["properties"].get("resources") or {})
        for c in properties["containers"]
    }
    return json.dumps(
        [
            properties.get("osType"),
            properties.get("restartPolicy", "Always"),
            containers,
            properties.get("subnetIds"),
            properties.get("sku", "Standard"),
        ],
        sort_keys=True,
    )


class AciBackend:
    def __init__(self, controls: AciControls, pull_check: PullCheck, errors: list[str]) -> None:
        self.lock = threading.RLock()
        self.controls = controls
        self._groups: dict[str, ContainerGroup] = {}  # by lower-cased id
        self._deleted: list[ContainerGroup] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="aci-emulator-")
        self._runner = GroupRunner(self.lock, controls, pull_check, self._tmp.name, errors)

    # ------------------------------------------------------------------ store

    def get(self, subscription_id: str, group: str, name: str) -> ContainerGroup | None:
        key = (
            f"/subscriptions/{subscription_id}/resourceGroups/{group}"
            f"/providers/Microsoft.ContainerInstance/containerGroups/{name}"
        ).lower()
        with self.lock:
            return self._groups.get(key)

    def by_id(self, resource_id: str) -> ContainerGroup | None:
        with self.lock:
            return self._groups.get(resource_id.rstrip("/").lower())

    def groups(
        self, subscription_id: str | None = None, group: str | None = None
    ) -> list[ContainerGroup]:
        with self.lock:
            return [
                g
                for g in self._groups.values()
                if (subscription_id is None or g.subscription_id.lower() == subscription_id.lower())
                and (group is None or g.resource_group.lower() == group.lower())
            ]

    # ------------------------------------------------------------------ operations

    def create_or_update(self, group: ContainerGroup) -> tuple[ContainerGroup, bool, int | None]:
        """The stored group, whether it is new, and the generation of a deployment it started
        (None when the PUT repeated the running definition)."""
        with self.lock:
            existing = self.get(group.subscription_id, group.resource_group, group.name)
            if existing is None:
                self._groups[group.id.lower()] = group
                return group, True, self._runner.deploy(group)
            if existing.definition_key() == group.definition_key():
                existing.tags = group.tags
                return existing, False, None
            if existing.transitioning:
                raise ArmError(
                    409,
                    "ContainerGroupTransitioning",
                    f"The container group '{existing.name}' is still transitioning, please "
                    "retry later.",
                )
            if _immutable(existing.properties) != _immutable(group.properties):
                raise ArmError(
                    400,
                    "InvalidContainerGroupUpdate",
                    f"The updates on container group '{existing.name}' are invalid. If you are "
                    "going to update the os type, restart policy, network profile, CPU, memory "
                    "or GPU resources for a container group, you must delete it first and then "
                    "create a new one.",
                )
            # Other changes redeploy the group: its containers restart with the new definition.
            existing.stop_requested.set()
            existing.tags = group.tags
            existing.properties = group.properties
            existing.identity = group.identity
            existing.containers = [
                ContainerInstance(c.name, c.properties) for c in group.containers
            ]
            return existing, False, self._runner.deploy(existing)

    def stop(self, group: ContainerGroup) -> None:
        with self.lock:
            group.stop_requested.set()
            if group.transitioning:
                group.provisioning_state = "Succeeded"
            group.state = "Stopped"

    def start(self, group: ContainerGroup) -> int | None:
        """Start a stopped (or finished) group; None when it already runs."""
        with self.lock:
            if group.state in ("Running", "Pending") and not group.stop_requested.is_set():
                return None
            return self._runner.deploy(group)

    def restart(self, group: ContainerGroup) -> int:
        with self.lock:
            if group.transitioning:
                raise ArmError(
                    409,
                    "ContainerGroupTransitioning",
                    f"The container group '{group.name}' is still transitioning, please retry "
                    "later.",
                )
            group.stop_requested.set()
            return self._runner.deploy(group)

    def delete(self, group: ContainerGroup) -> None:
        with self.lock:
            group.deleted = True
            group.stop_requested.set()
            self._groups.pop(group.id.lower(), None)
            self._deleted.append(group)

    def deployment_status(
        self, group: ContainerGroup, generation: int
    ) -> tuple[str, dict[str, str] | None]:
        with self.lock:
            if group.deleted or group.generation != generation:
                return FAILED, {
                    "code": "OperationCanceled",
                    "message": f"The operation on container group '{group.name}' was canceled.",
                }
            if group.provisioning_state == "Succeeded":
                return SUCCEEDED, None
            if group.provisioning_state == "Failed":
                return FAILED, group.failure
            return IN_PROGRESS, None

    def deletion_status(self, group: ContainerGroup) -> tuple[str, dict[str, str] | None]:
        runner = group.runner
        if runner is not None and runner.is_alive():
            return IN_PROGRESS, None
        return SUCCEEDED, None

    def stop_all(self) -> None:
        """Kill every process at once (the emulator is going away) and wait for the threads."""
        with self.lock:
            groups = list(self._groups.values()) + self._deleted
            for group in groups:
                group.stop_requested.set()
                for container in group.containers:
                    for run in container.runs:
                        if run.pid is not None and not run.finished:
                            signal_group(run.pid, signal.SIGKILL)  # no grace: shutting down
        for group in groups:
            if group.runner is not None:
                group.runner.join(10)
        self._tmp.cleanup()
