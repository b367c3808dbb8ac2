"""Artifact Registry v1 on the wire."""

from __future__ import annotations

from typing import Any

from google.cloud import artifactregistry_v1

from tests.emulators.gcp.resourcemanager.models import Project
from tests.emulators.gcp.rest import Request
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.wire import message_json, packed, page, parse_message, rfc3339

__all__ = ["ArtifactRegistryResponses"]

SERVICE = "artifactregistry.googleapis.com"
_REPOSITORY_TYPE = "google.devtools.artifactregistry.v1.Repository"
_METADATA_TYPE = "google.devtools.artifactregistry.v1.OperationMetadata"


class ArtifactRegistryResponses:
    def __init__(self, state: GcpState) -> None:
        self.state = state
        self.backend = state.artifacts

    def create_repository(self, request: Request) -> dict[str, Any]:
        params = request.params
        repository_id = request.arg("repositoryId")
        resource = self._resource(params["project"], params["location"], repository_id)
        project = self._project(request, "artifactregistry.repositories.create", resource)
        spec = parse_message(artifactregistry_v1.Repository, request.body)
        repository = self.backend.create_repository(
            project.project_id, params["location"], repository_id, spec
        )
        return self._operation(
            project, params["location"], packed(_REPOSITORY_TYPE, message_json(repository))
        )

    def get_repository(self, request: Request) -> dict[str, Any]:
        params = request.params
        resource = self._resource(params["project"], params["location"], params["repository"])
        project = self._project(request, "artifactregistry.repositories.get", resource)
        name = self._name(project, params["location"], params["repository"])
        return message_json(self.backend.get_repository(name))

    def list_repositories(self, request: Request) -> dict[str, Any]:
        params = request.params
        parent = f"projects/{params['project']}/locations/{params['location']}"
        project = self._project(request, "artifactregistry.repositories.list", parent)
        repositories = self.backend.list_repositories(project.project_id, params["location"])
        chunk, token = page(repositories, request.arg("pageSize"), request.arg("pageToken"))
        body: dict[str, Any] = {"repositories": [message_json(r) for r in chunk]}
        if token:
            body["nextPageToken"] = token
        return body

    def delete_repository(self, request: Request) -> dict[str, Any]:
        params = request.params
        resource = self._resource(params["project"], params["location"], params["repository"])
        project = self._project(request, "artifactregistry.repositories.delete", resource)
        self.backend.delete_repository(
            self._name(project, params["location"], params["repository"])
        )
        return self._operation(project, params["location"], None)

    def get_operation(self, request: Request) -> dict[str, Any]:
        params = request.params
        name = (
            f"projects/{params['project']}/locations/{params['location']}"
            f"/operations/{params['operation']}"
        )
        project = self._project(request, "artifactregistry.repositories.get", name)
        operation = self.state.operations.get(
            f"projects/{project.project_id}/locations/{params['location']}"
            f"/operations/{params['operation']}"
        )
        return self.state.operations.read(operation)

    def _operation(
        self, project: Project, location: str, response: dict[str, Any] | None
    ) -> dict[str, Any]:
        now = rfc3339(self.state.clock())
        operation = self.state.operations.finished(
            f"projects/{project.project_id}/locations/{location}",
            project.project_id,
            metadata=packed(_METADATA_TYPE, {"createTime": now, "endTime": now}),
            response=response,
        )
        return self.state.operations.read(operation)

    def _project(self, request: Request, permission: str, resource: str) -> Project:
        return self.state.project_for(
            request.principal, request.params["project"], permission, resource, service=SERVICE
        )

    @staticmethod
    def _resource(project: str, location: str, repository: str) -> str:
        return (
            f"//artifactregistry.googleapis.com/projects/{project}/locations/{location}"
            f"/repositories/{repository}"
        )

    @staticmethod
    def _name(project: Project, location: str, repository: str) -> str:
        return f"projects/{project.project_id}/locations/{location}/repositories/{repository}"
