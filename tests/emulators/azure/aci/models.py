"""Container groups: what was submitted, and what the runner made of it.

A group keeps the definition exactly as submitted (so a repeated PUT can be recognised) and
the live state ACI reports: provisioningState, the group's instanceView (state, events), and
per container its currentState / previousState, restartCount, events and every run of its
process (argv, environment, output, exit code) for tests to assert on.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.emulators.azure.entra.models import Principal

__all__ = [
    "GROUP_TYPE",
    "ContainerGroup",
    "ContainerInstance",
    "ContainerRun",
    "ContainerState",
    "Event",
]

GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"


@dataclass
class Event:
    name: str
    message: str
    type: str = "Normal"
    count: int = 1
    first: datetime = field(default_factory=lambda: datetime.now(UTC))
    last: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class ContainerState:
    state: str  # Waiting | Running | Terminated
    detail_status: str = ""
    start_time: datetime | None = None
    finish_time: datetime | None = None
    exit_code: int | None = None


@dataclass
class ContainerRun:
    """One start of a container's process."""

    argv: list[str]
    env: dict[str, str]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    exit_code: int | None = None
    output: list[str] = field(default_factory=list)
    pid: int | None = None

    @property
    def finished(self) -> bool:
        return self.exit_code is not None


@dataclass
class ContainerInstance:
    name: str
    properties: dict[str, Any]  # as submitted
    current_state: ContainerState = field(default_factory=lambda: ContainerState("Waiting"))
    previous_state: ContainerState | None = None
    restart_count: int = 0
    events: list[Event] = field(default_factory=list)
    runs: list[ContainerRun] = field(default_factory=list)

    @property
    def image(self) -> str:
        return str(self.properties.get("image", ""))

    @property
    def command(self) -> list[str] | None:
        command = self.properties.get("command")
        return [str(part) for part in command] if command else None

    @property
    def environment(self) -> dict[str, str]:
        """What the process gets: each variable's value or secureValue."""
        env = {}
        for variable in self.properties.get("environmentVariables") or []:
            value = variable.get("value", variable.get("secureValue"))
            env[str(variable["name"])] = "" if value is None else str(value)
        return env

    @property
    def requests(self) -> tuple[float, float]:
        requests = (self.properties.get("resources") or {}).get("requests") or {}
        return float(requests.get("cpu", 0)), float(requests.get("memoryInGB", 0))

    @property
    def run(self) -> ContainerRun | None:
        """The latest run."""
        return self.runs[-1] if self.runs else None

    def add_event(self, name: str, message: str, kind: str = "Normal") -> None:
        for event in self.events:
            if event.name == name and event.message == message:
                event.count += 1
                event.last = datetime.now(UTC)
                return
        self.events.append(Event(name, message, kind))


@dataclass
class ContainerGroup:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str] | None
    properties: dict[str, Any]  # as submitted
    identity: dict[str, Any] | None  # as submitted
    zones: list[str] | None
    containers: list[ContainerInstance]
    system_principal: Principal | None = None
    provisioning_state: str = "Pending"
    state: str = "Pending"  # the instanceView's: Pending | Running | Succeeded | Failed | Stopped
    events: list[Event] = field(default_factory=list)
    generation: int = 0
    stop_requested: threading.Event = field(default_factory=threading.Event)
    runner: threading.Thread | None = None
    failure: dict[str, str] | None = None  # the error a failed provisioning reports
    deleted: bool = False

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{GROUP_TYPE}/{self.name}"
        )

    @property
    def restart_policy(self) -> str:
        return str(self.properties.get("restartPolicy") or "Always")

    @property
    def os_type(self) -> str:
        return str(self.properties.get("osType", ""))

    @property
    def registry_credentials(self) -> list[dict[str, Any]]:
        return list(self.properties.get("imageRegistryCredentials") or [])

    @property
    def user_assigned_identity_ids(self) -> list[str]:
        return list(((self.identity or {}).get("userAssignedIdentities") or {}).keys())

    @property
    def transitioning(self) -> bool:
        return self.provisioning_state in ("Pending", "Creating", "Updating", "Repairing")

    def definition_key(self) -> str:
        """What makes two PUTs the same deployment (tags may change in place)."""
        return json.dumps(
            {
                "location": self.location.lower(),
                "properties": self.properties,
                "identity": self.identity,
                "zones": self.zones,
            },
            sort_keys=True,
        )

    def container(self, name: str) -> ContainerInstance | None:
        return next((c for c in self.containers if c.name.lower() == name.lower()), None)

    def add_event(self, name: str, message: str, kind: str = "Normal") -> None:
        self.events.append(Event(name, message, kind))
