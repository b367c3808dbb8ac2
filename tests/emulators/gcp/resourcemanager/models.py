"""Projects: an id, a number, and the IAM policy every permission check starts from."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.policy import Policy, validated_bindings

__all__ = ["Project", "ProjectsBackend"]


@dataclass
class Project:
    project_id: str
    number: str
    display_name: str
    create_time: float
    policy: Policy = field(default_factory=Policy)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"projects/{self.number}"


class ProjectsBackend:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.projects: dict[str, Project] = {}
        # Set by the emulator: raises for a member that names a missing service account.
        self.validate_member: Callable[[str], None] = lambda member: None
        self._next_number = 100000000001

    def add_project(self, project_id: str, number: str | None = None) -> Project:
        if project_id in self.projects:
            return self.projects[project_id]
        if number is None:
            number = str(self._next_number)
            self._next_number += 1
        project = Project(project_id, number, project_id, self.clock())
        self.projects[project_id] = project
        return project

    def find(self, ref: str) -> Project | None:
        """A project by `projects/ID`, `projects/NUMBER`, the id or the number."""
        key = ref.removeprefix("projects/")
        if key in self.projects:
            return self.projects[key]
        for project in self.projects.values():
            if project.number == key:
                return project
        return None

    def policy_of(self, project_id: str) -> Policy | None:
        project = self.projects.get(project_id)
        return project.policy if project else None

    def set_iam_policy(self, project: Project, body: dict[str, Any]) -> Policy:
        etag_text = str(body.get("etag", ""))
        try:
            etag = base64.b64decode(etag_text, validate=True) if etag_text else None
        except (ValueError, binascii.Error) as exc:
            raise ApiError("INVALID_ARGUMENT", "Invalid etag.") from exc
        bindings = validated_bindings(
            Policy.bindings_from_json(body.get("bindings", [])), self.validate_member
        )
        project.policy.replace(bindings, etag, int(body.get("version", 1) or 1))
        return project.policy
