"""IAM policies and the roles that grant permissions: just enough to prove least privilege.

A policy is a list of bindings (role -> members) with an etag that changes on every write; a
write that carries a stale etag fails with ABORTED, as Google answers concurrent changes.
A role grants the permissions its patterns match (fnmatch: `run.jobs.*`); unknown roles are
accepted in policies and grant nothing. `Access.allowed` looks at the project's policy and,
for service-account resources, at the account's own policy too.
"""

from __future__ import annotations

import base64
import fnmatch
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.gcp.errors import ApiError, permission_denied

__all__ = ["DEFAULT_ROLES", "Access", "Binding", "Policy", "validated_bindings"]

_MEMBER = re.compile(
    r"^(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|deleted:[a-zA-Z]+)"
    r":.+|principal(Set)?://.+|project(Owner|Editor|Viewer):.+)$"
)

_RUN_DEVELOPER = (
    "run.jobs.create",
    "run.jobs.get",
    "run.jobs.list",
    "run.jobs.update",
    "run.jobs.delete",
    "run.jobs.run",
    "run.jobs.runWithOverrides",
    "run.jobs.getIamPolicy",
    "run.executions.*",
    "run.tasks.*",
    "run.operations.*",
    "run.locations.list",
)
_READ_ONLY = ("*.get", "*.list", "*.getIamPolicy")

DEFAULT_ROLES: dict[str, tuple[str, ...]] = {
    # The brief's simplification: editor can do everything owner can.
    "roles/owner": ("*",),
    "roles/editor": ("*",),
    "roles/viewer": _READ_ONLY,
    "roles/run.admin": ("run.*",),
    "roles/run.developer": _RUN_DEVELOPER,
    "roles/run.invoker": ("run.jobs.run", "run.routes.invoke"),
    "roles/run.viewer": ("run.*.get", "run.*.list"),
    "roles/iam.serviceAccountUser": (
        "iam.serviceAccounts.actAs",
        "iam.serviceAccounts.get",
        "iam.serviceAccounts.list",
    ),
    "roles/iam.serviceAccountAdmin": ("iam.serviceAccounts.*",),
    "roles/iam.serviceAccountKeyAdmin": ("iam.serviceAccountKeys.*", "iam.serviceAccounts.get"),
    "roles/iam.serviceAccountCreator": ("iam.serviceAccounts.create",),
    "roles/resourcemanager.projectIamAdmin": (
        "resourcemanager.projects.get",
        "resourcemanager.projects.getIamPolicy",
        "resourcemanager.projects.setIamPolicy",
    ),
    "roles/browser": ("resourcemanager.projects.get",),
    "roles/serviceusage.serviceUsageAdmin": ("serviceusage.*",),
    "roles/serviceusage.serviceUsageViewer": (
        "serviceusage.services.get",
        "serviceusage.services.list",
        "serviceusage.operations.get",
    ),
    "roles/serviceusage.serviceUsageConsumer": (
        "serviceusage.services.get",
        "serviceusage.services.list",
        "serviceusage.services.use",
    ),
    "roles/artifactregistry.admin": ("artifactregistry.*",),
    "roles/artifactregistry.repoAdmin": (
        "artifactregistry.repositories.get",
        "artifactregistry.repositories.list",
        "artifactregistry.repositories.update",
        "artifactregistry.repositories.delete",
        "artifactregistry.repositories.uploadArtifacts",
        "artifactregistry.repositories.downloadArtifacts",
    ),
    "roles/artifactregistry.writer": (
        "artifactregistry.repositories.get",
        "artifactregistry.repositories.list",
        "artifactregistry.repositories.uploadArtifacts",
        "artifactregistry.repositories.downloadArtifacts",
    ),
    "roles/artifactregistry.reader": (
        "artifactregistry.repositories.get",
        "artifactregistry.repositories.list",
        "artifactregistry.repositories.downloadArtifacts",
    ),
    "roles/logging.viewer": ("logging.logEntries.list", "logging.logs.list"),
    "roles/logging.admin": ("logging.*",),
    "roles/storage.admin": ("storage.*",),
    "roles/storage.objectAdmin": ("storage.objects.*",),
    "roles/storage.objectCreator": ("storage.objects.create",),
    "roles/storage.objectViewer": ("storage.objects.get", "storage.objects.list"),
}


@dataclass
class Binding:
    role: str
    members: list[str]
    condition: dict[str, Any] | None = None


@dataclass
class Policy:
    bindings: list[Binding] = field(default_factory=list)
    version: int = 1
    etag: bytes = field(default_factory=lambda: secrets.token_bytes(8))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": self.version,
            "etag": base64.b64encode(self.etag).decode(),
        }
        bindings = []
        for binding in self.bindings:
            item: dict[str, Any] = {"role": binding.role, "members": list(binding.members)}
            if binding.condition:
                item["condition"] = binding.condition
            bindings.append(item)
        if bindings:
            body["bindings"] = bindings
        return body

    def replace(self, bindings: list[Binding], etag: bytes | None, version: int = 1) -> None:
        """setIamPolicy: a stale etag is a concurrent change; an empty one overwrites."""
        if etag and etag != self.etag:
            raise ApiError(
                "ABORTED",
                "There were concurrent policy changes. Please retry the whole "
                "read-modify-write with exponential backoff.",
            )
        merged: dict[str, Binding] = {}
        for binding in bindings:
            members = [m for m in dict.fromkeys(binding.members) if m]
            if not members:
                continue
            key = binding.role + repr(binding.condition)
            if key in merged:
                merged[key].members.extend(m for m in members if m not in merged[key].members)
            else:
                merged[key] = Binding(binding.role, members, binding.condition)
        self.bindings = list(merged.values())
        self.version = version
        self.etag = secrets.token_bytes(8)

    def grant(self, role: str, member: str) -> None:
        """Add one member to a role (a test's or an owner's shortcut; bumps the etag)."""
        for binding in self.bindings:
            if binding.role == role and binding.condition is None:
                if member not in binding.members:
                    binding.members.append(member)
                break
        else:
            self.bindings.append(Binding(role, [member]))
        self.etag = secrets.token_bytes(8)

    def roles_of(self, member: str) -> list[str]:
        # Conditional bindings grant nothing here: conditions are not evaluated.
        return [b.role for b in self.bindings if member in b.members and b.condition is None]

    @staticmethod
    def bindings_from_json(items: Iterable[dict[str, Any]]) -> list[Binding]:
        return [
            Binding(str(item.get("role", "")), list(item.get("members", [])), item.get("condition"))
            for item in items
        ]


class Access:
    """Answers "may this account do that here?" from the policies that apply."""

    def __init__(
        self,
        project_policy: Callable[[str], Policy | None],
        roles: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.project_policy = project_policy
        self.roles = dict(DEFAULT_ROLES if roles is None else roles)

    def allowed(self, email: str, permission: str, project_id: str, *extra: Policy | None) -> bool:
        member = f"serviceAccount:{email}"
        policies = [self.project_policy(project_id), *extra]
        for policy in policies:
            if policy is None:
                continue
            for role in policy.roles_of(member):
                if self.grants(role, permission):
                    return True
        return False

    def require(
        self,
        email: str,
        permission: str,
        project_id: str,
        resource: str | None = None,
        *extra: Policy | None,
    ) -> None:
        if not self.allowed(email, permission, project_id, *extra):
            raise permission_denied(permission, resource)

    def grants(self, role: str, permission: str) -> bool:
        return any(fnmatch.fnmatchcase(permission, p) for p in self.roles.get(role, ()))


def validated_bindings(
    bindings: list[Binding], validate_member: Callable[[str], None]
) -> list[Binding]:
    """The bindings of a setIamPolicy, or INVALID_ARGUMENT as Google rejects bad ones."""
    for binding in bindings:
        if not binding.role.startswith(("roles/", "projects/", "organizations/")):
            raise ApiError(
                "INVALID_ARGUMENT", f"Role {binding.role} is not supported for this resource."
            )
        for member in binding.members:
            if not _MEMBER.match(member):
                raise ApiError("INVALID_ARGUMENT", f"Invalid member: {member}.")
            validate_member(member)
    return bindings
