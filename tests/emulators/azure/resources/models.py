"""Subscriptions, their locations and resource providers, and resource groups."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.emulators.azure.wire import ArmError

__all__ = [
    "LOCATIONS",
    "PROVIDERS",
    "Location",
    "ResourceGroup",
    "ResourcesBackend",
    "Subscription",
]


@dataclass(frozen=True)
class Location:
    name: str
    display_name: str
    geography: str
    latitude: str
    longitude: str
    paired: str


LOCATIONS: tuple[Location, ...] = (
    Location("westeurope", "West Europe", "Europe", "52.3667", "4.9", "northeurope"),
    Location("northeurope", "North Europe", "Europe", "53.3478", "-6.2597", "westeurope"),
    Location("eastus", "East US", "US", "37.3719", "-79.8164", "westus"),
    Location("eastus2", "East US 2", "US", "36.6681", "-78.3889", "centralus"),
    Location("westus", "West US", "US", "37.783", "-122.417", "eastus"),
    Location("westus2", "West US 2", "US", "47.233", "-119.852", "westcentralus"),
    Location("centralus", "Central US", "US", "41.5908", "-93.6208", "eastus2"),
    Location("uksouth", "UK South", "UK", "50.941", "-0.799", "ukwest"),
    Location(
        "germanywestcentral",
        "Germany West Central",
        "Germany",
        "50.110924",
        "8.682127",
        "germanynorth",
    ),
    Location("swedencentral", "Sweden Central", "Sweden", "60.67488", "17.14127", "swedensouth"),
    Location("southeastasia", "Southeast Asia", "Asia Pacific", "1.283", "103.833", "eastasia"),
    Location(
        "australiaeast", "Australia East", "Australia", "-33.86", "151.2094", "australiasoutheast"
    ),
    Location("japaneast", "Japan East", "Japan", "35.68", "139.77", "japanwest"),
)

# The providers the emulator serves, with their resource types.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "Microsoft.ContainerInstance": (
        "containerGroups",
        "locations",
        "locations/operations",
        "locations/usages",
        "locations/capabilities",
    ),
    "Microsoft.ContainerRegistry": (
        "registries",
        "checkNameAvailability",
        "locations",
        "locations/operationResults",
    ),
    "Microsoft.ManagedIdentity": ("userAssignedIdentities", "Identities", "operations"),
    "Microsoft.Authorization": ("roleAssignments", "roleDefinitions", "permissions"),
    "Microsoft.Resources": ("subscriptions", "resourceGroups", "deployments"),
}
# Always registered in every subscription, as on Azure.
_ALWAYS_REGISTERED = ("Microsoft.Authorization", "Microsoft.Resources")


def location_named(name: str) -> Location | None:
    key = name.replace(" ", "").lower()
    return next((loc for loc in LOCATIONS if loc.name == key), None)


@dataclass
class Subscription:
    subscription_id: str
    display_name: str
    tenant_id: str
    # namespace (lower-cased) -> "Registered" | "Registering" | "NotRegistered"
    registration: dict[str, str] = field(default_factory=dict)
    registering_until: dict[str, float] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}"


@dataclass
class ResourceGroup:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, str] | None = None
    managed_by: str | None = None
    provisioning_state: str = "Succeeded"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"


class ResourcesBackend:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.subscriptions: dict[str, Subscription] = {}
        self._groups: dict[tuple[str, str], ResourceGroup] = {}

    # ------------------------------------------------------------------ subscriptions

    def add_subscription(
        self, subscription_id: str, display_name: str, tenant_id: str, registered: bool = True
    ) -> Subscription:
        state = "Registered" if registered else "NotRegistered"
        registration = {ns.lower(): state for ns in PROVIDERS}
        for namespace in _ALWAYS_REGISTERED:
            registration[namespace.lower()] = "Registered"
        subscription = Subscription(subscription_id, display_name, tenant_id, registration)
        with self._lock:
            self.subscriptions[subscription_id.lower()] = subscription
        return subscription

    def subscription(self, subscription_id: str) -> Subscription:
        with self._lock:
            found = self.subscriptions.get(subscription_id.lower())
        if found is None:
            raise ArmError(
                404,
                "SubscriptionNotFound",
                f"The subscription '{subscription_id}' could not be found.",
            )
        return found

    def registration_state(self, subscription_id: str, namespace: str, now: float) -> str:
        subscription = self.subscription(subscription_id)
        with self._lock:
            key = namespace.lower()
            state = subscription.registration.get(key, "NotRegistered")
            if state == "Registering" and now >= subscription.registering_until.get(key, 0.0):
                state = subscription.registration[key] = "Registered"
            return state

    def register(self, subscription_id: str, namespace: str, now: float, seconds: float) -> str:
        subscription = self.subscription(subscription_id)
        with self._lock:
            key = namespace.lower()
            if subscription.registration.get(key) != "Registered":
                subscription.registration[key] = "Registering"
                subscription.registering_until[key] = now + seconds
            return subscription.registration[key]

    def set_registration(self, subscription_id: str, namespace: str, state: str) -> None:
        subscription = self.subscription(subscription_id)
        with self._lock:
            subscription.registration[namespace.lower()] = state

    # ------------------------------------------------------------------ resource groups

    def create_or_update_group(
        self,
        subscription_id: str,
        name: str,
        location: str,
        tags: dict[str, str] | None,
        managed_by: str | None = None,
    ) -> tuple[ResourceGroup, bool]:
        """The group and whether it was created (an existing group keeps its location)."""
        key = (subscription_id.lower(), name.lower())
        with self._lock:
            existing = self._groups.get(key)
            if existing is not None:
                if location_named(location) != location_named(existing.location):
                    raise ArmError(
                        409,
                        "InvalidResourceGroupLocation",
                        f"Invalid resource group location '{location}'. The Resource group "
                        f"already exists in location '{existing.location}'.",
                    )
                if existing.provisioning_state == "Deleting":
                    raise ArmError(
                        409,
                        "ResourceGroupBeingDeleted",
                        f"The resource group '{name}' is in deprovisioning state and cannot "
                        "perform this operation.",
                    )
                existing.tags = tags
                return existing, False
            group = ResourceGroup(subscription_id, name, location, tags, managed_by)
            self._groups[key] = group
            return group, True

    def find_group(self, subscription_id: str, name: str) -> ResourceGroup | None:
        with self._lock:
            return self._groups.get((subscription_id.lower(), name.lower()))

    def group(self, subscription_id: str, name: str) -> ResourceGroup:
        found = self.find_group(subscription_id, name)
        if found is None:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
            )
        return found

    def remove_group(self, subscription_id: str, name: str) -> None:
        with self._lock:
            self._groups.pop((subscription_id.lower(), name.lower()), None)

    def groups(self, subscription_id: str | None = None) -> list[ResourceGroup]:
        with self._lock:
            return [
                g
                for g in self._groups.values()
                if subscription_id is None or g.subscription_id.lower() == subscription_id.lower()
            ]
