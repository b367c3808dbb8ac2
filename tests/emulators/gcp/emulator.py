"""GcpEmulator: Google Cloud on one 127.0.0.1 port, for tests that drive the real SDKs.

    with GcpEmulator() as emulator:
        key_file = emulator.create_key_file(tmp_path / "key.json", project="proj-a")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        monkeypatch.setenv("PUSH_POOLS_GCP_ENDPOINT", emulator.endpoint)

REST (Cloud Run v2, Artifact Registry v1, Service Usage v1, Resource Manager v3, Logging v2,
Cloud Storage JSON, the OAuth token endpoint) and gRPC (IAM admin v1) share the port; see
README.md in this directory for the surface, the permission model and the controls.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from google.cloud import artifactregistry_v1

from tests.emulators.gcp import oauth
from tests.emulators.gcp.artifactregistry import urls as artifactregistry_urls
from tests.emulators.gcp.calls import CallLog
from tests.emulators.gcp.cloudlogging import urls as logging_urls
from tests.emulators.gcp.faults import Faults
from tests.emulators.gcp.grpc_server import GrpcServer
from tests.emulators.gcp.iam import responses as iam_responses
from tests.emulators.gcp.iam.models import ServiceAccount
from tests.emulators.gcp.mux import PortMux
from tests.emulators.gcp.policy import Policy
from tests.emulators.gcp.resourcemanager import urls as resourcemanager_urls
from tests.emulators.gcp.resourcemanager.models import Project
from tests.emulators.gcp.rest import RestServer
from tests.emulators.gcp.run import urls as run_urls
from tests.emulators.gcp.run.models import Execution, Job
from tests.emulators.gcp.serviceusage import urls as serviceusage_urls
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.storage import urls as storage_urls
from tests.emulators.gcp.storage.models import Bucket

__all__ = ["GcpEmulator"]


class GcpEmulator:
    def __init__(
        self,
        *,
        port: int = 0,
        clock: Callable[[], float] = time.time,
        python: str | None = None,
        stop_grace_seconds: float = 2.0,
    ) -> None:
        self.port = port
        self.endpoint = ""
        self.state = GcpState(clock, lambda: self.endpoint + "/token")
        self.state.runner.python = python
        self.state.runner.stop_grace_seconds = stop_grace_seconds
        self.faults = Faults()
        self.calls = CallLog()
        self._mux: PortMux | None = None
        self._grpc: GrpcServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GcpEmulator:
        state = self.state
        shared: dict[str, Any] = {
            "authority": state.authority,
            "faults": self.faults,
            "calls": self.calls,
            "lock": state.lock,
            "errors": state.errors,
        }
        rest = RestServer(
            [
                *oauth.routes(state),
                *run_urls.routes(state),
                *artifactregistry_urls.routes(state),
                *serviceusage_urls.routes(state),
                *resourcemanager_urls.routes(state),
                *logging_urls.routes(state),
                *storage_urls.routes(state),
            ],
            **shared,
        )
        self._grpc = GrpcServer(iam_responses.SERVICE, iam_responses.methods(state), **shared)
        self._grpc.start()
        grpc_port = self._grpc.port

        def serve_http(conn: socket.socket, address: tuple[str, int]) -> None:
            rest.finish_request(conn, address)

        self._mux = PortMux(serve_http, lambda: grpc_port, port=self.port)
        self.endpoint = f"http://127.0.0.1:{self._mux.port}"
        state.authority.token_uri = self.endpoint + "/token"
        self._mux.start()
        return self

    def stop(self) -> None:
        """Kill every running execution, then close the port."""
        with self.state.lock:
            self.state.run.stop_all()
        self.state.runner.join(10)
        if self._mux is not None:
            self._mux.stop()
        if self._grpc is not None:
            self._grpc.stop()

    def __enter__(self) -> GcpEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ settings

    @property
    def errors(self) -> list[str]:
        """Tracebacks of emulator bugs met while serving (a test can assert none)."""
        return self.state.errors

    @property
    def unpullable_images(self) -> set[str]:
        return self.state.runner.unpullable_images

    @property
    def image_entrypoints(self) -> dict[str, list[str]]:
        """ENTRYPOINT per image, for jobs whose container gives no command."""
        return self.state.runner.image_entrypoints

    @property
    def require_enabled_services(self) -> bool:
        """When on, Cloud Run / Artifact Registry / IAM calls need their API enabled."""
        return self.state.require_enabled_services

    @require_enabled_services.setter
    def require_enabled_services(self, value: bool) -> None:
        self.state.require_enabled_services = value

    @property
    def operation_pending_reads(self) -> int:
        """Every operation answers done: false this many times first (to exercise polling)."""
        return self.state.operations.pending_reads

    @operation_pending_reads.setter
    def operation_pending_reads(self, value: int) -> None:
        self.state.operations.pending_reads = value

    @property
    def roles(self) -> dict[str, tuple[str, ...]]:
        """Role -> permission patterns (fnmatch); add custom roles here."""
        return self.state.access.roles

    # ------------------------------------------------------------------ arranging a test

    def create_key_file(
        self,
        path: str | Path,
        project: str = "proj-a",
        account_id: str = "owner",
        roles: Iterable[str] = ("roles/owner",),
    ) -> Path:
        """A service account (made if missing) with `roles` on the project, a new key, and
        that key's standard JSON written to `path`. The project is made if missing."""
        with self.state.lock:
            found = self.add_project(project)
            account = self.add_service_account(project, account_id)
            for role in roles:
                found.policy.grant(role, f"serviceAccount:{account.email}")
            saved = set(self.state.iam.key_creation_forbidden)
            self.state.iam.key_creation_forbidden.clear()
            try:
                _, document = self.state.iam.create_service_account_key(account)
            finally:
                self.state.iam.key_creation_forbidden.update(saved)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(document)
        return target

    def add_project(self, project_id: str, number: str | None = None) -> Project:
        return self.state.add_project(project_id, number)

    def add_service_account(
        self, project: str, account_id: str, display_name: str = ""
    ) -> ServiceAccount:
        """A service account "made by someone else" (no token, no call recorded)."""
        with self.state.lock:
            found = self.add_project(project)
            existing = self.state.iam.accounts.get(
                f"{account_id}@{found.project_id}.iam.gserviceaccount.com"
            )
            if existing is not None:
                return existing
            return self.state.iam.create_service_account(
                found, account_id, display_name, strict=False
            )

    def add_repository(
        self,
        project: str,
        location: str,
        repository_id: str,
        *,
        format: str = "DOCKER",
        labels: dict[str, str] | None = None,
        description: str = "",
    ) -> artifactregistry_v1.Repository:
        """An Artifact Registry repository "made by someone else"."""
        spec = artifactregistry_v1.Repository(
            format_=getattr(artifactregistry_v1.Repository.Format, format),
            labels=labels or {},
            description=description,
        )
        with self.state.lock:
            found = self.add_project(project)
            return self.state.artifacts.create_repository(
                found.project_id, location, repository_id, spec
            )

    def add_bucket(self, project: str, name: str, location: str = "US") -> Bucket:
        with self.state.lock:
            found = self.add_project(project)
            return self.state.storage.insert_bucket(
                found.project_id, {"name": name, "location": location}
            )

    def enable_services(self, project: str, *services: str) -> None:
        with self.state.lock:
            found = self.add_project(project)
            for service in services:
                self.state.services.enable_service(found.project_id, service)

    def grant(self, project: str, role: str, member: str) -> None:
        """Add `member` (e.g. "serviceAccount:x@p.iam.gserviceaccount.com") to `role`."""
        with self.state.lock:
            self.add_project(project).policy.grant(role, member)

    def forbid_key_creation(self, project: str) -> None:
        """As the org policy constraints/iam.disableServiceAccountKeyCreation would."""
        with self.state.lock:
            self.state.iam.key_creation_forbidden.add(self.add_project(project).project_id)

    # ------------------------------------------------------------------ state, for assertions

    @property
    def jobs(self) -> dict[str, Job]:
        with self.state.lock:
            return dict(self.state.run.jobs)

    @property
    def executions(self) -> dict[str, Execution]:
        with self.state.lock:
            return dict(self.state.run.executions)

    @property
    def service_accounts(self) -> dict[str, ServiceAccount]:
        """By email; each has `.keys` (key id -> Key) and its own `.policy`."""
        with self.state.lock:
            return dict(self.state.iam.accounts)

    @property
    def repositories(self) -> dict[str, artifactregistry_v1.Repository]:
        with self.state.lock:
            return dict(self.state.artifacts.repositories)

    @property
    def buckets(self) -> dict[str, Bucket]:
        """By name; each has `.objects` (name -> StoredObject with `.data`)."""
        with self.state.lock:
            return dict(self.state.storage.buckets)

    @property
    def log_entries(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.logging.entries)

    def project_policy(self, project: str) -> Policy:
        found = self.state.projects.find(project)
        if found is None:
            raise KeyError(project)
        return found.policy

    def enabled_services(self, project: str) -> set[str]:
        found = self.state.projects.find(project)
        if found is None:
            raise KeyError(project)
        with self.state.lock:
            return set(self.state.services.enabled.get(found.project_id, set()))

    def wait_for_execution(self, name: str, timeout: float = 30.0) -> Execution:
        """The execution once it has finished; TimeoutError after `timeout` seconds."""
        with self.state.lock:
            execution = self.state.run.executions.get(name)
        if execution is None:
            raise KeyError(name)
        if not execution.finished.wait(timeout):
            raise TimeoutError(f"{name} still running after {timeout} s")
        return execution
