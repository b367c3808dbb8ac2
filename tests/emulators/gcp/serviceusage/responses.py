"""Service Usage v1 on the wire. Names use the project number, as Google answers them."""

from __future__ import annotations

from typing import Any

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.resourcemanager.models import Project
from tests.emulators.gcp.rest import Request
from tests.emulators.gcp.serviceusage.models import TITLES
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.wire import packed, page

__all__ = ["ServiceUsageResponses"]

_PREFIX = "google.api.serviceusage.v1."


class ServiceUsageResponses:
    def __init__(self, state: GcpState) -> None:
        self.state = state
        self.backend = state.services

    def get_service(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "serviceusage.services.get")
        service = request.params["service"]
        self.backend.check_name(service)
        return self._service_json(project, service)

    def list_services(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "serviceusage.services.list")
        wanted = request.arg("filter").replace(" ", "")
        if wanted not in ("", "state:ENABLED", "state:DISABLED"):
            raise ApiError("INVALID_ARGUMENT", f"Invalid filter: {request.arg('filter')}")
        names = self.backend.known_services(project.project_id)
        if wanted:
            enabled = wanted == "state:ENABLED"
            names = [n for n in names if self.backend.is_enabled(project.project_id, n) == enabled]
        chunk, token = page(names, request.arg("pageSize") or 50, request.arg("pageToken"))
        body: dict[str, Any] = {"services": [self._service_json(project, n) for n in chunk]}
        if token:
            body["nextPageToken"] = token
        return body

    def enable_service(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "serviceusage.services.enable")
        service = request.params["service"]
        self.backend.enable_service(project.project_id, service)
        response = packed(
            _PREFIX + "EnableServiceResponse", {"service": self._service_json(project, service)}
        )
        return self._operation(project, response)

    def disable_service(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "serviceusage.services.disable")
        service = request.params["service"]
        self.backend.disable_service(project.project_id, service)
        response = packed(
            _PREFIX + "DisableServiceResponse", {"service": self._service_json(project, service)}
        )
        return self._operation(project, response)

    def batch_enable_services(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "serviceusage.services.enable")
        service_ids = request.json().get("serviceIds", [])
        if not isinstance(service_ids, list) or not 0 < len(service_ids) <= 20:
            raise ApiError("INVALID_ARGUMENT", "serviceIds must name between 1 and 20 services.")
        for service in service_ids:
            self.backend.check_name(str(service))
        for service in service_ids:
            self.backend.enable_service(project.project_id, str(service))
        response = packed(
            _PREFIX + "BatchEnableServicesResponse",
            {"services": [self._service_json(project, str(s)) for s in service_ids]},
        )
        return self._operation(project, response)

    def get_operation(self, request: Request) -> dict[str, Any]:
        operation = self.state.operations.get(f"operations/{request.params['operation']}")
        project = self.state.projects.projects.get(operation.project_id)
        if project is not None:
            self.state.access.require(
                request.principal, "serviceusage.operations.get", project.project_id
            )
        return self.state.operations.read(operation)

    def _operation(self, project: Project, response: dict[str, Any]) -> dict[str, Any]:
        operation = self.state.operations.finished(
            "",
            project.project_id,
            metadata=packed(_PREFIX + "OperationMetadata", {}),
            response=response,
        )
        return self.state.operations.read(operation)

    def _project(self, request: Request, permission: str) -> Project:
        ref = request.params["project"]
        return self.state.project_for(request.principal, ref, permission, f"projects/{ref}")

    def _service_json(self, project: Project, service: str) -> dict[str, Any]:
        enabled = self.backend.is_enabled(project.project_id, service)
        return {
            "name": f"projects/{project.number}/services/{service}",
            "parent": f"projects/{project.number}",
            "config": {"name": service, "title": TITLES.get(service, service)},
            "state": "ENABLED" if enabled else "DISABLED",
        }
