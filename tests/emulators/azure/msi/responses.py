"""Microsoft.ManagedIdentity on the wire: user-assigned identities."""

from __future__ import annotations

from typing import Any

from tests.emulators.azure.msi.models import IDENTITY_TYPE, UserAssignedIdentity
from tests.emulators.azure.routing import Ctx
from tests.emulators.azure.wire import Response, resource_not_found

__all__ = [
    "create_or_update_identity",
    "delete_identity",
    "get_identity",
    "list_identities_by_group",
    "list_identities_by_subscription",
    "update_identity",
]


def identity_json(identity: UserAssignedIdentity) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": identity.id,
        "name": identity.name,
        "type": IDENTITY_TYPE,
        "location": identity.location,
        "properties": {
            "tenantId": identity.principal.tenant_id,
            "principalId": identity.principal.object_id,
            "clientId": identity.principal.client_id,
            "isolationScope": "None",
        },
    }
    if identity.tags is not None:
        body["tags"] = identity.tags
    return body


def _existing(ctx: Ctx) -> UserAssignedIdentity:
    ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    found = ctx.state.msi.get(ctx.params["sub"], ctx.params["rg"], ctx.params["name"])
    if found is None:
        raise resource_not_found(IDENTITY_TYPE, ctx.params["name"], ctx.params["rg"])
    return found


def create_or_update_identity(ctx: Ctx) -> Response:
    state = ctx.state
    group = state.require_group(ctx.params["sub"], ctx.params["rg"])
    body = ctx.request.json()
    location = state.require_location(body.get("location"), IDENTITY_TYPE)
    existing = state.msi.get(group.subscription_id, group.name, ctx.params["name"])
    if existing is not None:
        existing.tags = body.get("tags", existing.tags)
        return Response(200, identity_json(existing))
    identity = state.add_identity(
        group.subscription_id, group.name, ctx.params["name"], location, body.get("tags")
    )
    return Response(201, identity_json(identity))


def get_identity(ctx: Ctx) -> Response:
    return Response(200, identity_json(_existing(ctx)))


def update_identity(ctx: Ctx) -> Response:
    identity = _existing(ctx)
    body = ctx.request.json()
    if "tags" in body:
        identity.tags = body["tags"]
    return Response(200, identity_json(identity))


def delete_identity(ctx: Ctx) -> Response:
    ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    found = ctx.state.msi.get(ctx.params["sub"], ctx.params["rg"], ctx.params["name"])
    if found is None:
        return Response(204)
    ctx.state.msi.remove(found)
    ctx.state.directory.remove(found.principal.object_id)
    ctx.state.authorization.delete_within(found.id)
    return Response(200)


def list_identities_by_group(ctx: Ctx) -> Response:
    ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    identities = ctx.state.msi.identities(ctx.params["sub"], ctx.params["rg"])
    return Response(200, {"value": [identity_json(i) for i in identities]})


def list_identities_by_subscription(ctx: Ctx) -> Response:
    identities = ctx.state.msi.identities(ctx.params["sub"])
    return Response(200, {"value": [identity_json(i) for i in identities]})
