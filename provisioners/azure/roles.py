"""Role assignments: AcrPull for the pool's identity on its registry, and the control plane's
narrow roles on the pool's resource group and identity.

An assignment's name is a GUID derived from scope, role and principal, so a retried PUT is the
same assignment. Ours carry a description naming the pool; the same grant made by someone else
(another name, no such description) is adopted and never removed. Verbs follow
provisioners/plan.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provisioners.azure.base import AzureStep
from provisioners.azure.clients import AzureContext
from provisioners.azure.config import assignment_name
from provisioners.azure.errors import absent, arm_code
from provisioners.plan import ResourceRecord, StepCheck
from push_pools.errors import InvalidInput

__all__ = ["RoleAssignmentStep", "mark"]

# (ctx) -> the scope or principal object id; None while an earlier step's resource is missing.
Resolve = Callable[[AzureContext], str | None]


def mark(pool: str) -> str:
    return f"Made by push-pools for pool {pool}"


class RoleAssignmentStep(AzureStep):
    kind = "azure:role-assignment"

    def __init__(
        self,
        step_id: str,
        role: str,
        role_name: str,
        *,
        scope: Resolve,
        principal: Resolve,
        title: str,
    ) -> None:
        self.id = step_id
        self.role = role
        self.role_name = role_name
        self._scope = scope
        self._principal = principal
        self.title = title

    def _record_of(
        self, ctx: AzureContext, scope: str, principal: str, name: str, created: bool
    ) -> ResourceRecord:
        data = {
            "scope": scope,
            "role": self.role_name,
            "role_definition_id": ctx.role_definition_id(self.role),
            "principal_id": principal,
            "name": name,
        }
        identifier = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        return self.record(identifier, data, created=created)

    def _ours(self, ctx: AzureContext, assignment: Any) -> bool:
        return bool(assignment.description == mark(ctx.config.pool_name))

    def _same_grant(self, ctx: AzureContext, scope: str, principal: str) -> Any:
        """An assignment of this role to `principal` at exactly `scope`, whatever its name."""
        listed = ctx.clients.authorization.role_assignments.list_for_scope(
            scope, filter=f"principalId eq '{principal}'"
        )
        for assignment in listed:
            same_role = str(assignment.role_definition_id).lower().endswith(self.role)
            if same_role and str(assignment.scope).lower() == scope.lower():
                return assignment
        return None

    def _find(self, ctx: AzureContext, scope: str, principal: str) -> ResourceRecord | None:
        name = assignment_name(scope, self.role, principal)
        assignments = ctx.clients.authorization.role_assignments
        found = absent(assignments.get, scope, name)
        if found is not None:
            return self._record_of(ctx, scope, principal, name, self._ours(ctx, found))
        other = self._same_grant(ctx, scope, principal)
        if other is not None:
            return self._record_of(ctx, scope, principal, str(other.name), self._ours(ctx, other))
        return None

    def _check(self, ctx: AzureContext) -> StepCheck:
        scope, principal = self._scope(ctx), self._principal(ctx)
        if scope is None or principal is None:
            return self.missing(f"{self.role_name}")  # what it is on is still to be made
        found = self._find(ctx, scope, principal)
        if found is None:
            return self.missing(f"{self.role_name} for {principal} on {scope}")
        return self.found(found)

    def _create(self, ctx: AzureContext) -> ResourceRecord:
        from azure.core.exceptions import ResourceExistsError

        scope, principal = self._scope(ctx), self._principal(ctx)
        if scope is None or principal is None:
            raise InvalidInput(f"{self.title}: an earlier step's resource is missing")
        found = self._find(ctx, scope, principal)
        if found is not None:
            return found
        name = assignment_name(scope, self.role, principal)
        body = {
            "role_definition_id": ctx.role_definition_id(self.role),
            "principal_id": principal,
            # Named, so a principal made moments ago is not refused while Entra replicates it.
            "principal_type": "ServicePrincipal",
            "description": mark(ctx.config.pool_name),
        }
        try:
            ctx.clients.authorization.role_assignments.create(scope, name, body)
        except ResourceExistsError as exc:
            # Granted meanwhile, by us (a lost answer) or someone else: read which.
            if arm_code(exc) != "RoleAssignmentExists":
                raise
            again = self._find(ctx, scope, principal)
            if again is None:
                raise
            return again
        return self._record_of(ctx, scope, principal, name, True)

    def _sweep(self, ctx: AzureContext) -> None:
        try:
            scope, principal = self._scope(ctx), self._principal(ctx)
        except InvalidInput:
            return  # whom we granted is unknown (no records, no secret): nothing to find
        if scope is None or principal is None:
            return
        name = assignment_name(scope, self.role, principal)
        found = absent(ctx.clients.authorization.role_assignments.get, scope, name)
        if found is not None and self._ours(ctx, found):
            self._delete(ctx, self._record_of(ctx, scope, principal, name, True))

    def _delete(self, ctx: AzureContext, record: ResourceRecord) -> None:
        absent(
            ctx.clients.authorization.role_assignments.delete,
            record.data["scope"],
            record.data["name"],
        )
