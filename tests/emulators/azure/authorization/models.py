"""Role definitions and assignments, and the check every ARM call goes through.

A call is allowed when one of the caller's assignments, at the call's scope or a parent scope,
has a role whose actions match the call's action and whose notActions do not. Patterns use `*`
as Azure does: `Microsoft.Authorization/*/read` matches any read under Microsoft.Authorization,
and `userAssignedIdentities/*/assign/action` also matches `userAssignedIdentities/assign/action`.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.emulators.azure.authorization.builtin_roles import BUILTIN_ROLES, RoleDefinition
from tests.emulators.azure.wire import ArmError

__all__ = [
    "AuthorizationBackend",
    "RoleAssignment",
    "action_matches",
    "scope_contains",
]

_DEFINITION_ID = re.compile(
    r"^(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/([^/]+)$",
    re.IGNORECASE,
)


@dataclass
class RoleAssignment:
    name: str  # a GUID
    scope: str
    role_definition_guid: str
    principal_id: str
    principal_type: str
    created_by: str | None
    description: str | None = None
    created_on: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def id(self) -> str:
        scope = self.scope.rstrip("/")
        return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{self.name}"


def action_matches(pattern: str, action: str) -> bool:
    regex = re.escape(pattern).replace("/\\*/", "/(?:.*/)?").replace("\\*", ".*")
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


def scope_contains(outer: str, inner: str) -> bool:
    """Whether an assignment at `outer` applies at `inner` (the same scope or a child)."""
    outer_key = outer.rstrip("/").lower()
    inner_key = inner.rstrip("/").lower()
    return outer_key == "" or inner_key == outer_key or inner_key.startswith(outer_key + "/")


def _grants(role: RoleDefinition, action: str) -> bool:
    return any(action_matches(p, action) for p in role.actions) and not any(
        action_matches(p, action) for p in role.not_actions
    )


class AuthorizationBackend:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.definitions: dict[str, RoleDefinition] = {r.guid: r for r in BUILTIN_ROLES}
        self._assignments: dict[str, RoleAssignment] = {}  # by lower-cased id

    # ------------------------------------------------------------------ definitions

    def definition_by_name(self, role_name: str) -> RoleDefinition:
        found = next(
            (d for d in self.definitions.values() if d.role_name.lower() == role_name.lower()),
            None,
        )
        if found is None:
            raise KeyError(f"no built-in role named {role_name!r} in the emulator")
        return found

    def definition_from_id(self, definition_id: str) -> RoleDefinition:
        match = _DEFINITION_ID.match(definition_id.strip())
        guid = match.group(1).lower() if match else definition_id.strip().lower()
        found = self.definitions.get(guid)
        if found is None:
            raise ArmError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{guid}' does not exist.",
            )
        return found

    # ------------------------------------------------------------------ assignments

    def create(
        self,
        scope: str,
        name: str,
        definition: RoleDefinition,
        principal_id: str,
        principal_type: str,
        created_by: str | None,
        description: str | None = None,
    ) -> RoleAssignment:
        try:
            uuid.UUID(name)
        except ValueError:
            raise ArmError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. "
                "The role assignment ID must be a GUID.",
            ) from None
        assignment = RoleAssignment(
            name, scope, definition.guid, principal_id, principal_type, created_by, description
        )
        with self._lock:
            existing = self._assignments.get(assignment.id.lower())
            if existing is not None and (
                existing.principal_id != principal_id
                or existing.role_definition_guid != definition.guid
            ):
                raise ArmError(
                    400,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be "
                    "updated.",
                )
            duplicate = existing or next(
                (
                    a
                    for a in self._assignments.values()
                    if a.principal_id == principal_id
                    and a.role_definition_guid == definition.guid
                    and a.scope.rstrip("/").lower() == scope.rstrip("/").lower()
                ),
                None,
            )
            if duplicate is not None:
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
            self._assignments[assignment.id.lower()] = assignment
        return assignment

    def get(self, assignment_id: str) -> RoleAssignment | None:
        with self._lock:
            return self._assignments.get(assignment_id.rstrip("/").lower())

    def delete(self, assignment_id: str) -> RoleAssignment | None:
        with self._lock:
            return self._assignments.pop(assignment_id.rstrip("/").lower(), None)

    def delete_within(self, scope: str) -> None:
        """Forget the assignments at a deleted resource or group and below it."""
        with self._lock:
            for key, assignment in list(self._assignments.items()):
                if scope_contains(scope, assignment.scope):
                    del self._assignments[key]

    def assignments(self) -> list[RoleAssignment]:
        with self._lock:
            return list(self._assignments.values())

    def list_for_scope(
        self,
        scope: str,
        *,
        at_scope_only: bool = False,
        principal_id: str | None = None,
    ) -> list[RoleAssignment]:
        """ARM's list: at, above and below the scope; with atScope(), at and above only."""
        found = []
        for assignment in self.assignments():
            if principal_id is not None and assignment.principal_id != principal_id:
                continue
            above = scope_contains(assignment.scope, scope)
            below = scope_contains(scope, assignment.scope)
            if above or (below and not at_scope_only):
                found.append(assignment)
        return found

    # ------------------------------------------------------------------ checks

    def allowed(self, principal_id: str, action: str, scope: str) -> bool:
        for assignment in self.assignments():
            if assignment.principal_id != principal_id:
                continue
            if not scope_contains(assignment.scope, scope):
                continue
            role = self.definitions.get(assignment.role_definition_guid)
            if role is not None and _grants(role, action):
                return True
        return False

    def has_any_role_within(self, principal_id: str, scope: str) -> bool:
        return any(
            a.principal_id == principal_id
            and (scope_contains(a.scope, scope) or scope_contains(scope, a.scope))
            for a in self.assignments()
        )
