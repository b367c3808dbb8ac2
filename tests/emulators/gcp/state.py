"""Every backend of the emulated cloud, wired together, and the checks the APIs share.

`project_for` is the gate every call passes: the project must exist, the caller must hold the
permission there (an unknown project is a 403 like a denied one, as Google answers), and, when
`require_enabled_services` is on, the API must be enabled in the project.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.emulators.gcp.artifactregistry.models import ArtifactRegistryBackend
from tests.emulators.gcp.auth import TokenAuthority, VerifyingKey
from tests.emulators.gcp.cloudlogging.models import LoggingBackend
from tests.emulators.gcp.errors import ApiError, permission_denied
from tests.emulators.gcp.iam.models import IamBackend
from tests.emulators.gcp.operations import Operations
from tests.emulators.gcp.policy import Access, Policy
from tests.emulators.gcp.resourcemanager.models import Project, ProjectsBackend
from tests.emulators.gcp.run.models import RunBackend
from tests.emulators.gcp.run.runner import ExecutionRunner
from tests.emulators.gcp.serviceusage.models import TITLES, ServiceUsageBackend
from tests.emulators.gcp.storage.models import StorageBackend

__all__ = ["GcpState"]


class GcpState:
    def __init__(self, clock: Callable[[], float], token_uri: Callable[[], str]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        # Tracebacks of emulator bugs (a test can assert there were none).
        self.errors: list[str] = []
        self.require_enabled_services = False
        self.projects = ProjectsBackend(clock)
        self.iam = IamBackend(self.projects, clock, token_uri)
        self.projects.validate_member = self.iam.validate_member
        self.access = Access(self.projects.policy_of)
        self.authority = TokenAuthority(
            clock=clock, find_key=self._verifying_key, account_active=self._account_active
        )
        self.services = ServiceUsageBackend()
        self.operations = Operations()
        self.logging = LoggingBackend(clock)
        self.artifacts = ArtifactRegistryBackend(clock)
        self.storage = StorageBackend(clock)
        self.runner = ExecutionRunner(
            self.lock, self.logging, clock, self.operations.notify, self.errors
        )
        self.run = RunBackend(clock, self.runner.launch, self.runner.stop)

    def add_project(self, project_id: str, number: str | None = None) -> Project:
        with self.lock:
            project = self.projects.add_project(project_id, number)
            self.services.add_project(project.project_id)
            return project

    def project_for(
        self,
        principal: str,
        ref: str,
        permission: str,
        resource: str | None = None,
        *,
        service: str | None = None,
        extra: tuple[Policy | None, ...] = (),
    ) -> Project:
        project = self.projects.find(ref)
        if project is None:
            raise permission_denied(permission, resource)
        if service and self.require_enabled_services:
            self.require_service(project, service)
        self.access.require(principal, permission, project.project_id, resource, *extra)
        return project

    def require_service(self, project: Project, service: str) -> None:
        if self.services.is_enabled(project.project_id, service):
            return
        title = TITLES.get(service, service)
        raise ApiError(
            "PERMISSION_DENIED",
            f"{title} has not been used in project {project.number} before or it is disabled. "
            f"Enable it by visiting https://console.developers.google.com/apis/api/{service}/"
            f"overview?project={project.number} then retry. If you enabled this API recently, "
            "wait a few minutes for the action to propagate to our systems and retry.",
        )

    def _verifying_key(self, key_id: str) -> VerifyingKey | None:
        with self.lock:
            return self.iam.verifying_key(key_id)

    def _account_active(self, email: str) -> bool:
        with self.lock:
            return self.iam.account_active(email)
