"""User-assigned managed identities: each one is a principal in the directory."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tests.emulators.azure.entra.models import Principal

__all__ = ["IDENTITY_TYPE", "MsiBackend", "UserAssignedIdentity"]

IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"


@dataclass
class UserAssignedIdentity:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str] | None
    principal: Principal

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
            f"/providers/{IDENTITY_TYPE}/{self.name}"
        )


class MsiBackend:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._identities: dict[str, UserAssignedIdentity] = {}  # by lower-cased id

    def put(self, identity: UserAssignedIdentity) -> None:
        with self._lock:
            self._identities[identity.id.lower()] = identity

    def get(self, subscription_id: str, group: str, name: str) -> UserAssignedIdentity | None:
        return self.by_id(
            f"/subscriptions/{subscription_id}/resourcegroups/{group}/providers/{IDENTITY_TYPE}/{name}"
        )

    def by_id(self, resource_id: str) -> UserAssignedIdentity | None:
        with self._lock:
            return self._identities.get(resource_id.rstrip("/").lower())

    def by_client_id(self, client_id: str) -> UserAssignedIdentity | None:
        with self._lock:
            return next(
                (i for i in self._identities.values() if i.principal.client_id == client_id), None
            )

    def remove(self, identity: UserAssignedIdentity) -> None:
        with self._lock:
            self._identities.pop(identity.id.lower(), None)

    def identities(
        self, subscription_id: str | None = None, group: str | None = None
    ) -> list[UserAssignedIdentity]:
        with self._lock:
            return [
                i
                for i in self._identities.values()
                if (subscription_id is None or i.subscription_id.lower() == subscription_id.lower())
                and (group is None or i.resource_group.lower() == group.lower())
            ]
