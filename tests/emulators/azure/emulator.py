"""`AzureEmulator`: Entra + ARM on https://127.0.0.1:PORT, a managed-identity endpoint on
http://127.0.0.1:PORT2, and the controls and state accessors tests use.

    with AzureEmulator() as emulator:
        env = emulator.env()                     # settings + the Owner service principal
        emulator.unpullable_images.add("bad:1")  # controls
        emulator.faults.add("PUT .*/containerGroups/", 503)
        emulator.container_group("rg", "job-1").containers[0].run.exit_code
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.emulators.azure.aci.models import ContainerGroup
from tests.emulators.azure.aci.urls import ACI_ROUTES
from tests.emulators.azure.acr.models import Registry
from tests.emulators.azure.acr.urls import ACR_ROUTES
from tests.emulators.azure.authorization.models import RoleAssignment
from tests.emulators.azure.authorization.urls import AUTHORIZATION_ROUTES
from tests.emulators.azure.entra.models import Principal
from tests.emulators.azure.entra.responses import IdentityHosts
from tests.emulators.azure.entra.urls import ENTRA_ROUTES, identity_routes
from tests.emulators.azure.faults import CallLog, CallRecord, Faults
from tests.emulators.azure.msi.models import UserAssignedIdentity
from tests.emulators.azure.msi.urls import MSI_ROUTES
from tests.emulators.azure.pipeline import Dispatcher
from tests.emulators.azure.resources.models import ResourceGroup
from tests.emulators.azure.resources.urls import OPERATION_ROUTES, RESOURCES_ROUTES
from tests.emulators.azure.routing import Router
from tests.emulators.azure.server import Listener
from tests.emulators.azure.state import ArmState
from tests.emulators.azure.tls import write_certificate

__all__ = ["AzureEmulator"]

RoleSpec = tuple[str, str]  # (role name, scope)


class AzureEmulator:
    def __init__(
        self,
        *,
        port: int = 0,
        identity_port: int = 0,
        subscription_id: str | None = None,
        tenant_id: str | None = None,
        providers_registered: bool = True,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="azure-emulator-")
        cert, key = write_certificate(Path(self._tmp.name))
        self.ca_bundle = str(cert)
        self.state = ArmState(tenant_id)
        self.tenant_id = self.state.tenant_id
        self.subscription_id = subscription_id or str(uuid.uuid4())
        self.faults = Faults()
        self.identity_hosts = IdentityHosts()
        self._log = CallLog()
        routes = (
            AUTHORIZATION_ROUTES
            + OPERATION_ROUTES
            + ACI_ROUTES
            + ACR_ROUTES
            + MSI_ROUTES
            + RESOURCES_ROUTES
            + ENTRA_ROUTES
        )
        arm = Dispatcher(self.state, Router(routes), self.faults, self._log)
        identity = Dispatcher(
            self.state, Router(identity_routes(self.identity_hosts)), self.faults, self._log
        )
        self._https = Listener(arm.handle, port=port, cert=(cert, key))
        self._http = Listener(identity.handle, port=identity_port)
        self.endpoint = self._https.base_url
        self.identity_endpoint = f"{self._http.base_url}/msi/token"
        self.state.directory.issuer_base = self.endpoint
        self.state.resources.add_subscription(
            self.subscription_id, "push-pools emulator", self.tenant_id, providers_registered
        )
        # The account's owner: what a developer's own credentials would be.
        self.owner = self.create_service_principal(
            "emulator-owner", roles=[("Owner", f"/subscriptions/{self.subscription_id}")]
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AzureEmulator:
        self._https.start()
        self._http.start()
        return self

    def stop(self) -> None:
        self.state.aci.stop_all()
        self._https.stop()
        self._http.stop()
        self._tmp.cleanup()

    def __enter__(self) -> AzureEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ how clients connect

    @property
    def authority_host(self) -> str:
        return self.endpoint

    def env(self, principal: Principal | None = None) -> dict[str, str]:
        """The settings product code reads, signed in as `principal` (default: the owner)."""
        who = principal or self.owner
        return {
            "PUSH_POOLS_AZURE_ENDPOINT": self.endpoint,
            "PUSH_POOLS_AZURE_CA_BUNDLE": self.ca_bundle,
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            **who.env(),
        }

    def client_kwargs(self) -> dict[str, Any]:
        """What every azure-mgmt client needs to reach the emulator."""
        return {"base_url": self.endpoint, "connection_verify": self.ca_bundle}

    def credential(self, principal: Principal | None = None) -> Any:
        """A ClientSecretCredential for `principal` against the emulator's Entra endpoints."""
        from azure.identity import ClientSecretCredential

        who = principal or self.owner
        return ClientSecretCredential(
            who.tenant_id,
            who.client_id,
            who.client_secret or "",
            authority=self.authority_host,
            disable_instance_discovery=True,
            connection_verify=self.ca_bundle,
        )

    # ------------------------------------------------------------------ identities

    def create_service_principal(
        self, display_name: str, roles: Iterable[RoleSpec] = ()
    ) -> Principal:
        principal = self.state.directory.add(display_name)
        for role, scope in roles:
            self.assign_role(principal, role, scope)
        return principal

    def create_managed_identity_principal(
        self, display_name: str, roles: Iterable[RoleSpec] = ()
    ) -> Principal:
        """A system-assigned identity's principal (no secret), e.g. of the machine a server
        runs on; see `managed_identity_env`."""
        principal = self.state.directory.add(
            display_name, kind="ManagedIdentity", with_secret=False
        )
        for role, scope in roles:
            self.assign_role(principal, role, scope)
        return principal

    def managed_identity_env(
        self,
        system: Principal | None = None,
        user_assigned: Iterable[UserAssignedIdentity] = (),
    ) -> dict[str, str]:
        """IDENTITY_ENDPOINT and IDENTITY_HEADER of an App Service host with these identities:
        ManagedIdentityCredential() then gets tokens with no secret at all."""
        host = self.identity_hosts.add(system, {i.id: i.principal for i in user_assigned})
        return {"IDENTITY_ENDPOINT": self.identity_endpoint, "IDENTITY_HEADER": host.secret}

    def assign_role(self, principal: Principal | str, role_name: str, scope: str) -> RoleAssignment:
        """Grant a role directly (not an ARM call, not in `calls`)."""
        object_id = principal if isinstance(principal, str) else principal.object_id
        kind = "ServicePrincipal"
        definition = self.state.authorization.definition_by_name(role_name)
        return self.state.authorization.create(
            scope, str(uuid.uuid4()), definition, object_id, kind, None
        )

    # ------------------------------------------------------------------ resources made by others

    def add_resource_group(
        self, name: str, location: str = "westeurope", tags: dict[str, str] | None = None
    ) -> ResourceGroup:
        group, _ = self.state.resources.create_or_update_group(
            self.subscription_id, name, location, tags
        )
        return group

    def add_identity(
        self,
        group: str,
        name: str,
        location: str = "westeurope",
        tags: dict[str, str] | None = None,
    ) -> UserAssignedIdentity:
        self.state.require_group(self.subscription_id, group)
        return self.state.add_identity(self.subscription_id, group, name, location, tags)

    def add_registry(
        self,
        group: str,
        name: str,
        location: str = "westeurope",
        tags: dict[str, str] | None = None,
        *,
        sku: str = "Basic",
        admin_user_enabled: bool = False,
    ) -> Registry:
        self.state.require_group(self.subscription_id, group)
        return self.state.add_registry(
            self.subscription_id,
            group,
            name,
            location,
            tags,
            sku=sku,
            admin_user_enabled=admin_user_enabled,
        )

    def reserve_registry_name(self, name: str) -> None:
        """Make a registry name taken by someone else (registry names are global)."""
        self.state.acr.reserved_names.add(name.lower())

    def set_provider_registration(self, namespace: str, state: str = "NotRegistered") -> None:
        self.state.resources.set_registration(self.subscription_id, namespace, state)

    # ------------------------------------------------------------------ controls

    @property
    def unpullable_images(self) -> set[str]:
        return self.state.aci_controls.unpullable_images

    @property
    def pending_images(self) -> set[str]:
        return self.state.aci_controls.pending_images

    @property
    def pending_seconds(self) -> float:
        return self.state.aci_controls.pending_seconds

    @pending_seconds.setter
    def pending_seconds(self, value: float) -> None:
        self.state.aci_controls.pending_seconds = value

    @property
    def pull_give_up_seconds(self) -> float | None:
        return self.state.aci_controls.pull_give_up_seconds

    @pull_give_up_seconds.setter
    def pull_give_up_seconds(self, value: float | None) -> None:
        self.state.aci_controls.pull_give_up_seconds = value

    @property
    def stop_grace_seconds(self) -> float:
        return self.state.aci_controls.stop_grace_seconds

    @stop_grace_seconds.setter
    def stop_grace_seconds(self, value: float) -> None:
        self.state.aci_controls.stop_grace_seconds = value

    @property
    def aci_limits(self) -> dict[str, tuple[float, float]]:
        """(cpu, memoryInGB) a container group may request, per location."""
        return self.state.aci_controls.limits

    @property
    def lro_retry_after(self) -> str:
        return self.state.operations.retry_after

    @lro_retry_after.setter
    def lro_retry_after(self, value: str) -> None:
        self.state.operations.retry_after = value

    @property
    def token_lifetime_seconds(self) -> int:
        return self.state.directory.token_lifetime_seconds

    @token_lifetime_seconds.setter
    def token_lifetime_seconds(self, value: int) -> None:
        self.state.directory.token_lifetime_seconds = value

    @property
    def provider_registration_seconds(self) -> float:
        return self.state.provider_registration_seconds

    @provider_registration_seconds.setter
    def provider_registration_seconds(self, value: float) -> None:
        self.state.provider_registration_seconds = value

    @property
    def principal_replication_seconds(self) -> float:
        return self.state.principal_replication_seconds

    @principal_replication_seconds.setter
    def principal_replication_seconds(self, value: float) -> None:
        self.state.principal_replication_seconds = value

    # ------------------------------------------------------------------ what happened

    @property
    def calls(self) -> list[CallRecord]:
        return self._log.records()

    def clear_calls(self) -> None:
        self._log.clear()

    @property
    def errors(self) -> list[str]:
        """Failures inside the emulator itself (a test can assert there were none)."""
        return list(self.state.errors)

    def resource_groups(self) -> list[ResourceGroup]:
        return self.state.resources.groups(self.subscription_id)

    def identities(self) -> list[UserAssignedIdentity]:
        return self.state.msi.identities()

    def registries(self) -> list[Registry]:
        return self.state.acr.registries()

    def role_assignments(self, principal_id: str | None = None) -> list[RoleAssignment]:
        return [
            a
            for a in self.state.authorization.assignments()
            if principal_id is None or a.principal_id == principal_id
        ]

    def container_groups(self) -> list[ContainerGroup]:
        return self.state.aci.groups()

    def container_group(self, group: str, name: str) -> ContainerGroup | None:
        return self.state.aci.get(self.subscription_id, group, name)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached in time")
            time.sleep(0.02)
