"""Resource Manager v3 on the wire: projects.get and the project IAM policy.

A project the caller may not see and a project that does not exist both answer 403
PERMISSION_DENIED "The caller does not have permission" (Google does not reveal which);
`projects/NUMBER` and `projects/ID` both work.
"""

from __future__ import annotations

from typing import Any

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.resourcemanager.models import Project
from tests.emulators.gcp.rest import Request
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.wire import rfc3339

__all__ = ["ProjectsResponses"]


class ProjectsResponses:
    def __init__(self, state: GcpState) -> None:
        self.state = state
        self.backend = state.projects

    def get_project(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "resourcemanager.projects.get")
        return {
            "name": project.name,
            "parent": "organizations/1",
            "projectId": project.project_id,
            "state": "ACTIVE",
            "displayName": project.display_name,
            "createTime": rfc3339(project.create_time),
            "updateTime": rfc3339(project.create_time),
            "etag": f'W/"{project.number}"',
            "labels": dict(project.labels),
        }

    def get_iam_policy(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "resourcemanager.projects.getIamPolicy")
        return project.policy.to_json()

    def set_iam_policy(self, request: Request) -> dict[str, Any]:
        project = self._project(request, "resourcemanager.projects.setIamPolicy")
        body = request.json()
        policy = body.get("policy")
        if not isinstance(policy, dict):
            raise ApiError("INVALID_ARGUMENT", "policy is required.")
        return self.backend.set_iam_policy(project, policy).to_json()

    def _project(self, request: Request, permission: str) -> Project:
        project = self.backend.find(request.params["project"])
        if project is None or not self.state.access.allowed(
            request.principal, permission, project.project_id
        ):
            raise ApiError("PERMISSION_DENIED", "The caller does not have permission")
        return project
