"""Microsoft.Authorization on the wire: role assignments and role definitions at any scope."""

from __future__ import annotations

import re
from typing import Any

from tests.emulators.azure.authorization.builtin_roles import RoleDefinition
from tests.emulators.azure.authorization.models import RoleAssignment
from tests.emulators.azure.routing import Ctx
from tests.emulators.azure.wire import ArmError, Response, iso_time

__all__ = [
    "create_assignment",
    "delete_assignment",
    "get_assignment",
    "get_definition",
    "list_assignments",
    "list_definitions",
]

_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_QUOTED = r"'([^']*)'"


def _scope(ctx: Ctx) -> str:
    return ctx.params["scope"].rstrip("/")


def _definition_id(scope: str, guid: str) -> str:
    match = _SUBSCRIPTION.match(scope)
    prefix = f"/subscriptions/{match.group(1)}" if match else ""
    return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def assignment_json(assignment: RoleAssignment) -> dict[str, Any]:
    created = iso_time(assignment.created_on)
    return {
        "id": assignment.id,
        "name": assignment.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": _definition_id(assignment.scope, assignment.role_definition_guid),
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": assignment.scope,
            "condition": None,
            "conditionVersion": None,
            "createdOn": created,
            "updatedOn": created,
            "createdBy": assignment.created_by,
            "updatedBy": assignment.created_by,
            "delegatedManagedIdentityResourceId": None,
            "description": assignment.description,
        },
    }


def definition_json(scope: str, role: RoleDefinition) -> dict[str, Any]:
    return {
        "id": _definition_id(scope, role.guid),
        "name": role.guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.role_name,
            "type": role.role_type,
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(role.actions),
                    "notActions": list(role.not_actions),
                    "dataActions": list(role.data_actions),
                    "notDataActions": list(role.not_data_actions),
                }
            ],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-01-01T00:00:00.0000000Z",
            "createdBy": None,
            "updatedBy": None,
        },
    }


# ---------------------------------------------------------------------- assignments


def create_assignment(ctx: Ctx) -> Response:
    state = ctx.state
    scope = _scope(ctx)
    state.require_scope(scope)
    body = ctx.request.json()
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content was invalid.")
    definition = state.authorization.definition_from_id(str(properties.get("roleDefinitionId")))
    principal_id = str(properties.get("principalId", ""))
    principal_type = properties.get("principalType")
    principal = state.directory.get(principal_id)
    if principal is None or (
        principal_type is None and not state.directory.replicated(principal_id)
    ):
        raise ArmError(
            400,
            "PrincipalNotFound",
            f"Principal {principal_id.replace('-', '')} does not exist in the directory "
            f"{state.tenant_id}. Check that you have the correct principal ID. If you are "
            "creating this principal and then immediately assigning a role, this error might "
            "be related to a replication delay. In this case, set the role assignment "
            "principalType property to a value, such as ServicePrincipal, User, or Group.  See "
            "https://aka.ms/docs-principaltype",
        )
    assignment = state.authorization.create(
        scope,
        ctx.params["name"],
        definition,
        principal_id,
        str(principal_type or "ServicePrincipal"),
        ctx.principal.object_id if ctx.principal else None,
        properties.get("description"),
    )
    return Response(201, assignment_json(assignment))


def _assignment_id(ctx: Ctx) -> str:
    return f"{_scope(ctx)}/providers/Microsoft.Authorization/roleAssignments/{ctx.params['name']}"


def get_assignment(ctx: Ctx) -> Response:
    found = ctx.state.authorization.get(_assignment_id(ctx))
    if found is None:
        raise ArmError(
            404,
            "RoleAssignmentNotFound",
            f"The role assignment '{ctx.params['name']}' is not found.",
        )
    return Response(200, assignment_json(found))


def delete_assignment(ctx: Ctx) -> Response:
    found = ctx.state.authorization.delete(_assignment_id(ctx))
    if found is None:
        return Response(204)
    return Response(200, assignment_json(found))


def list_assignments(ctx: Ctx) -> Response:
    scope = _scope(ctx)
    at_scope_only, principal_id = False, None
    for term in _filter_terms(ctx):
        if term.lower() == "atscope()":
            at_scope_only = True
        elif m := re.fullmatch(r"principalId\s+eq\s+" + _QUOTED, term, re.IGNORECASE):
            principal_id = m.group(1)
        elif m := re.fullmatch(r"assignedTo\(" + _QUOTED + r"\)", term, re.IGNORECASE):
            principal_id = m.group(1)
        else:
            raise ArmError(400, "UnsupportedQuery", f"The filter '{term}' is not supported.")
    found = ctx.state.authorization.list_for_scope(
        scope, at_scope_only=at_scope_only, principal_id=principal_id
    )
    return Response(200, {"value": [assignment_json(a) for a in found]})


def _filter_terms(ctx: Ctx) -> list[str]:
    text = ctx.request.query.get("$filter", "").strip()
    return [t.strip() for t in re.split(r"\s+and\s+", text, flags=re.IGNORECASE) if t.strip()]


# ---------------------------------------------------------------------- definitions


def get_definition(ctx: Ctx) -> Response:
    role = ctx.state.authorization.definitions.get(ctx.params["guid"].lower())
    if role is None:
        raise ArmError(
            404,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{ctx.params['guid']}' does not exist.",
        )
    return Response(200, definition_json(_scope(ctx), role))


def list_definitions(ctx: Ctx) -> Response:
    roles = list(ctx.state.authorization.definitions.values())
    for term in _filter_terms(ctx):
        if m := re.fullmatch(r"roleName\s+eq\s+" + _QUOTED, term, re.IGNORECASE):
            roles = [r for r in roles if r.role_name.lower() == m.group(1).lower()]
        elif m := re.fullmatch(r"type\s+eq\s+" + _QUOTED, term, re.IGNORECASE):
            roles = [r for r in roles if r.role_type.lower() == m.group(1).lower()]
        else:
            raise ArmError(400, "UnsupportedQuery", f"The filter '{term}' is not supported.")
    return Response(200, {"value": [definition_json(_scope(ctx), r) for r in roles]})
