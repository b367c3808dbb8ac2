"""Everything the emulator knows, and the rules that span services.

One `ArmState` per emulator: the directory (Entra), the backends of each resource provider,
the long-running operations, and the checks that need more than one of them: may this caller
do that here, does this group or location exist, can this container group pull that image.
"""

from __future__ import annotations

import secrets
import uuid

from tests.emulators.azure.aci.backend import AciBackend
from tests.emulators.azure.aci.models import ContainerGroup
from tests.emulators.azure.aci.runner import AciControls
from tests.emulators.azure.acr.models import AcrBackend, Registry
from tests.emulators.azure.authorization.models import AuthorizationBackend
from tests.emulators.azure.entra.models import Directory, Principal
from tests.emulators.azure.lro import Operations
from tests.emulators.azure.msi.models import MsiBackend, UserAssignedIdentity
from tests.emulators.azure.resources.models import (
    LOCATIONS,
    ResourceGroup,
    ResourcesBackend,
    location_named,
)
from tests.emulators.azure.wire import ArmError

__all__ = ["ArmState"]

_PULL_ACTION = "Microsoft.ContainerRegistry/registries/pull/read"


class ArmState:
    def __init__(self, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.directory = Directory(self.tenant_id)
        self.resources = ResourcesBackend()
        self.authorization = AuthorizationBackend()
        self.msi = MsiBackend()
        self.acr = AcrBackend()
        self.operations = Operations()
        self.errors: list[str] = []  # exceptions inside emulator threads
        self.aci_controls = AciControls()
        self.aci = AciBackend(self.aci_controls, self.image_pull_failure, self.errors)
        # How long a provider stays Registering after a register call.
        self.provider_registration_seconds = 0.0
        # How long a new managed identity's principal is invisible to role assignments.
        self.principal_replication_seconds = 0.0

    # ------------------------------------------------------------------ lookups

    def require_group(self, subscription_id: str, name: str) -> ResourceGroup:
        self.resources.subscription(subscription_id)
        return self.resources.group(subscription_id, name)

    def require_scope(self, scope: str) -> None:
        """A role assignment's scope must exist: subscription, group, or resource."""
        parts = scope.strip("/").split("/")
        if len(parts) < 2 or parts[0].lower() != "subscriptions":
            raise ArmError(
                400,
                "InvalidRoleAssignmentScope",
                f"The scope '{scope}' is not valid for role assignments in the emulator.",
            )
        self.resources.subscription(parts[1])
        if len(parts) < 4:
            return
        self.resources.group(parts[1], parts[3])
        if len(parts) <= 4:
            return
        exists = (
            self.msi.by_id(scope) is not None
            or self.acr.by_id(scope) is not None
            or self.aci.by_id(scope) is not None
        )
        if not exists:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{'/'.join(parts[5:])}' under resource group '{parts[3]}' was not "
                "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )

    def require_location(self, location: str | None, resource_type: str) -> str:
        """The canonical name of a location this resource type is offered in."""
        found = location_named(location or "")
        if found is None:
            available = ",".join(loc.name for loc in LOCATIONS)
            if location:
                raise ArmError(
                    400,
                    "LocationNotAvailableForResourceType",
                    f"The provided location '{location}' is not available for resource type "
                    f"'{resource_type}'. List of available regions for the resource type is "
                    f"'{available}'.",
                )
            raise ArmError(
                400, "LocationRequired", "The location property is required for this definition."
            )
        return found.name

    # ------------------------------------------------------------------ creation

    def add_identity(
        self,
        subscription_id: str,
        group: str,
        name: str,
        location: str,
        tags: dict[str, str] | None,
    ) -> UserAssignedIdentity:
        principal = self.directory.add(
            name,
            kind="ManagedIdentity",
            with_secret=False,
            replication_seconds=self.principal_replication_seconds,
        )
        identity = UserAssignedIdentity(subscription_id, group, name, location, tags, principal)
        self.msi.put(identity)
        return identity

    def add_registry(
        self,
        subscription_id: str,
        group: str,
        name: str,
        location: str,
        tags: dict[str, str] | None,
        *,
        sku: str = "Basic",
        admin_user_enabled: bool = False,
    ) -> Registry:
        registry = Registry(subscription_id, group, name, location, tags, sku, admin_user_enabled)
        self.acr.put(registry)
        return registry

    def fresh_secret(self) -> str:
        return secrets.token_urlsafe(24)

    # ------------------------------------------------------------------ permissions

    def require_linked(
        self, principal: Principal, action: str, scope: str, linked_action: str, linked: list[str]
    ) -> None:
        """ARM's linked authorization: using another resource needs an action on that one."""
        denied = [
            s
            for s in linked
            if not self.authorization.allowed(principal.object_id, linked_action, s)
        ]
        if denied:
            raise ArmError(
                403,
                "LinkedAuthorizationFailed",
                f"The client '{principal.object_id}' with object id '{principal.object_id}' has "
                f"permission to perform action '{action}' on scope '{scope}'; however, it does "
                f"not have permission to perform action(s) '{linked_action}' on the linked "
                f"scope(s) '{','.join(denied)}' (respectively) or the linked scope(s) are "
                "invalid.",
            )

    # ------------------------------------------------------------------ cascades

    def delete_group_contents(self, group: ResourceGroup) -> None:
        """What deleting a resource group deletes: every resource in it."""
        sub, name = group.subscription_id, group.name
        for container_group in self.aci.groups(sub, name):
            self.delete_container_group(container_group)
        for identity in self.msi.identities(sub, name):
            self.msi.remove(identity)
            self.directory.remove(identity.principal.object_id)
        for registry in self.acr.registries(sub, name):
            self.acr.remove(registry)
        self.authorization.delete_within(group.id)

    def delete_container_group(self, group: ContainerGroup) -> None:
        self.aci.delete(group)
        if group.system_principal is not None:
            self.directory.remove(group.system_principal.object_id)
        self.authorization.delete_within(group.id)

    # ------------------------------------------------------------------ images

    def image_pull_failure(self, group: ContainerGroup, image: str) -> str | None:
        """Why ACI could not pull `image` for `group`, or None.

        Images from a registry the emulator hosts (`<name>.azurecr.io/...`) need credentials
        that work: the admin user, a service principal with pull rights, or a user-assigned
        identity of the group with pull rights (AcrPull) on the registry.
        """
        if image in self.aci_controls.unpullable_images:
            return f'failed to resolve reference "{image}": {image}: not found'
        host = image.split("/", 1)[0].lower() if "/" in image else ""
        if not host.endswith(".azurecr.io"):
            return None
        registry = self.acr.by_login_server(host)
        if registry is None:
            return f'failed to resolve reference "{image}": dial tcp: lookup {host}: no such host'
        for credential in group.registry_credentials:
            if str(credential.get("server", "")).lower() != host:
                continue
            identity_id = credential.get("identity")
            if identity_id:
                attached = {i.lower() for i in group.user_assigned_identity_ids}
                identity = self.msi.by_id(str(identity_id))
                if (
                    identity is not None
                    and str(identity_id).lower() in attached
                    and self.authorization.allowed(
                        identity.principal.object_id, _PULL_ACTION, registry.id
                    )
                ):
                    return None
                continue
            username, password = credential.get("username"), credential.get("password")
            if (
                registry.admin_user_enabled
                and username == registry.name
                and (password in registry.passwords)
            ):
                return None
            principal = self.directory.by_client_id(str(username))
            if (
                principal is not None
                and principal.client_secret == password
                and self.authorization.allowed(principal.object_id, _PULL_ACTION, registry.id)
            ):
                return None
        return (
            f'failed to resolve reference "{image}": failed to authorize: failed to fetch '
            "anonymous token: unexpected status: 401 Unauthorized"
        )
