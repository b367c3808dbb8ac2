"""Container registries. Their names are global: `<name>.azurecr.io` is one DNS name for all
of Azure, so a name another subscription holds is taken."""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["REGISTRY_TYPE", "AcrBackend", "Registry", "valid_registry_name"]

REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"
_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")


def valid_registry_name(name: str) -> bool:
    return _NAME.match(name) is not None


@dataclass
class Registry:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str] | None
    sku: str = "Basic"
    admin_user_enabled: bool = False
    passwords: tuple[str, str] = field(
        default_factory=lambda: (secrets.token_urlsafe(24), secrets.token_urlsafe(24))
    )
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    provisioning_state: str = "Succeeded"

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{REGISTRY_TYPE}/{self.name}"
        )

    @property
    def login_server(self) -> str:
        return f"{self.name.lower()}.azurecr.io"


class AcrBackend:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._registries: dict[str, Registry] = {}  # by lower-cased id
        self.reserved_names: set[str] = set()  # held by someone else, elsewhere in Azure
        # Refresh tokens /oauth2/exchange issued: token -> (principal object id, login server).
        self.refresh_tokens: dict[str, tuple[str, str]] = {}

    def name_taken(self, name: str, by_other_than: str | None = None) -> bool:
        key = name.lower()
        with self._lock:
            if key in self.reserved_names:
                return True
            return any(
                r.name.lower() == key and r.id.lower() != (by_other_than or "").lower()
                for r in self._registries.values()
            )

    def put(self, registry: Registry) -> None:
        with self._lock:
            self._registries[registry.id.lower()] = registry

    def by_id(self, resource_id: str) -> Registry | None:
        with self._lock:
            return self._registries.get(resource_id.rstrip("/").lower())

    def get(self, subscription_id: str, group: str, name: str) -> Registry | None:
        return self.by_id(
            f"/subscriptions/{subscription_id}/resourceGroups/{group}/providers/{REGISTRY_TYPE}/{name}"
        )

    def by_login_server(self, host: str) -> Registry | None:
        with self._lock:
            return next(
                (r for r in self._registries.values() if r.login_server == host.lower()), None
            )

    def remove(self, registry: Registry) -> None:
        with self._lock:
            self._registries.pop(registry.id.lower(), None)

    def registries(
        self, subscription_id: str | None = None, group: str | None = None
    ) -> list[Registry]:
        with self._lock:
            return [
                r
                for r in self._registries.values()
                if (subscription_id is None or r.subscription_id.lower() == subscription_id.lower())
                and (group is None or r.resource_group.lower() == group.lower())
            ]
