"""Microsoft.Resources on the wire: subscriptions, locations, providers, resource groups, and
the status URLs of long-running operations (which ARM serves for every provider)."""

from __future__ import annotations

import time
from typing import Any

from tests.emulators.azure.authorization.models import scope_contains
from tests.emulators.azure.resources.models import (
    LOCATIONS,
    PROVIDERS,
    ResourceGroup,
    Subscription,
    location_named,
)
from tests.emulators.azure.routing import Ctx
from tests.emulators.azure.wire import ArmError, Response

__all__ = [
    "check_group_existence",
    "create_or_update_group",
    "delete_group",
    "get_group",
    "get_provider",
    "get_subscription",
    "list_group_resources",
    "list_groups",
    "list_locations",
    "list_providers",
    "list_subscriptions",
    "operation_result",
    "operation_status",
    "register_provider",
    "unregister_provider",
    "update_group",
]


def _subscription_json(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": subscription.subscription_id,
        "tenantId": subscription.tenant_id,
        "displayName": subscription.display_name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def _group_json(group: ResourceGroup) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "properties": {"provisioningState": group.provisioning_state},
    }
    if group.tags is not None:
        body["tags"] = group.tags
    if group.managed_by:
        body["managedBy"] = group.managed_by
    return body


# ---------------------------------------------------------------------- subscriptions


def list_subscriptions(ctx: Ctx) -> Response:
    principal = ctx.principal
    visible = [
        _subscription_json(s)
        for s in list(ctx.state.resources.subscriptions.values())
        if principal is not None
        and ctx.state.authorization.has_any_role_within(principal.object_id, s.id)
    ]
    return Response(200, {"value": visible})


def get_subscription(ctx: Ctx) -> Response:
    return Response(200, _subscription_json(ctx.state.resources.subscription(ctx.params["sub"])))


def list_locations(ctx: Ctx) -> Response:
    sub = ctx.state.resources.subscription(ctx.params["sub"])
    value = [
        {
            "id": f"{sub.id}/locations/{loc.name}",
            "name": loc.name,
            "type": "Region",
            "displayName": loc.display_name,
            "regionalDisplayName": f"({loc.geography}) {loc.display_name}",
            "metadata": {
                "regionType": "Physical",
                "regionCategory": "Recommended",
                "geography": loc.geography,
                "geographyGroup": loc.geography,
                "longitude": loc.longitude,
                "latitude": loc.latitude,
                "physicalLocation": loc.display_name,
                "pairedRegion": [{"name": loc.paired, "id": f"{sub.id}/locations/{loc.paired}"}],
            },
        }
        for loc in LOCATIONS
    ]
    return Response(200, {"value": value})


# ---------------------------------------------------------------------- providers


def _provider_json(ctx: Ctx, namespace: str, state: str) -> dict[str, Any]:
    canonical = next(ns for ns in PROVIDERS if ns.lower() == namespace.lower())
    return {
        "id": f"/subscriptions/{ctx.params['sub']}/providers/{canonical}",
        "namespace": canonical,
        "registrationState": state,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [
            {
                "resourceType": resource_type,
                "locations": [loc.display_name for loc in LOCATIONS],
                "apiVersions": sorted(ctx.route.api_versions, reverse=True),
            }
            for resource_type in PROVIDERS[canonical]
        ],
    }


def _known_namespace(namespace: str) -> str:
    found = next((ns for ns in PROVIDERS if ns.lower() == namespace.lower()), None)
    if found is None:
        raise ArmError(
            404,
            "InvalidResourceNamespace",
            f"The resource namespace '{namespace}' is invalid (the emulator serves "
            f"{', '.join(PROVIDERS)}).",
        )
    return found


def list_providers(ctx: Ctx) -> Response:
    sub = ctx.params["sub"]
    now = time.monotonic()
    value = [
        _provider_json(ctx, ns, ctx.state.resources.registration_state(sub, ns, now))
        for ns in PROVIDERS
    ]
    return Response(200, {"value": value})


def get_provider(ctx: Ctx) -> Response:
    namespace = _known_namespace(ctx.params["namespace"])
    state = ctx.state.resources.registration_state(ctx.params["sub"], namespace, time.monotonic())
    return Response(200, _provider_json(ctx, namespace, state))


def register_provider(ctx: Ctx) -> Response:
    namespace = _known_namespace(ctx.params["namespace"])
    state = ctx.state.resources.register(
        ctx.params["sub"], namespace, time.monotonic(), ctx.state.provider_registration_seconds
    )
    return Response(200, _provider_json(ctx, namespace, state))


def unregister_provider(ctx: Ctx) -> Response:
    namespace = _known_namespace(ctx.params["namespace"])
    ctx.state.resources.set_registration(ctx.params["sub"], namespace, "NotRegistered")
    return Response(200, _provider_json(ctx, namespace, "Unregistered"))


# ---------------------------------------------------------------------- resource groups


def create_or_update_group(ctx: Ctx) -> Response:
    body = ctx.request.json()
    location = body.get("location") if isinstance(body, dict) else None
    found = location_named(location or "")
    if found is None:
        available = ",".join(loc.name for loc in LOCATIONS)
        raise ArmError(
            400,
            "LocationNotAvailableForResourceGroup",
            f"The provided location '{location}' is not available for resource group. List of "
            f"available regions is '{available}'.",
        )
    tags = body.get("tags")
    group, created = ctx.state.resources.create_or_update_group(
        ctx.params["sub"], ctx.params["rg"], found.name, tags, body.get("managedBy")
    )
    return Response(201 if created else 200, _group_json(group))


def get_group(ctx: Ctx) -> Response:
    return Response(200, _group_json(ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])))


def check_group_existence(ctx: Ctx) -> Response:
    found = ctx.state.resources.find_group(ctx.params["sub"], ctx.params["rg"])
    return Response(204 if found is not None else 404)


def update_group(ctx: Ctx) -> Response:
    group = ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    body = ctx.request.json()
    if "tags" in body:
        group.tags = body["tags"]
    return Response(200, _group_json(group))


def list_groups(ctx: Ctx) -> Response:
    principal = ctx.principal
    groups = [
        _group_json(g)
        for g in ctx.state.resources.groups(ctx.params["sub"])
        if principal is not None
        and ctx.state.authorization.allowed(
            principal.object_id, "Microsoft.Resources/subscriptions/resourceGroups/read", g.id
        )
    ]
    return Response(200, {"value": groups})


def delete_group(ctx: Ctx) -> Response:
    state = ctx.state
    group = state.require_group(ctx.params["sub"], ctx.params["rg"])
    doomed = state.aci.groups(group.subscription_id, group.name)
    state.delete_group_contents(group)
    state.resources.remove_group(group.subscription_id, group.name)

    def status() -> tuple[str, dict[str, str] | None]:
        pending = [g for g in doomed if state.aci.deletion_status(g)[0] != "Succeeded"]
        return ("InProgress", None) if pending else ("Succeeded", None)

    if status()[0] == "Succeeded":
        # Nothing left to wait for: answer at once. (This SDK reads Retry-After as an integer,
        # so an accepted-and-poll answer would cost the caller at least a second.)
        return Response(200)
    operation = state.operations.start(
        group.subscription_id, "Microsoft.Resources", group.location, status
    )
    url = state.operations.location_url(
        operation, ctx.base_url, ctx.request.api_version or "2025-04-01"
    )
    return Response(202, None, {"Location": url, "Retry-After": "1"})


def list_group_resources(ctx: Ctx) -> Response:
    state = ctx.state
    group = state.require_group(ctx.params["sub"], ctx.params["rg"])
    sub, name = group.subscription_id, group.name
    items: list[tuple[str, str, str, str, dict[str, str] | None]] = []
    for identity in state.msi.identities(sub, name):
        items.append(
            (
                identity.id,
                identity.name,
                "Microsoft.ManagedIdentity/userAssignedIdentities",
                identity.location,
                identity.tags,
            )
        )
    for registry in state.acr.registries(sub, name):
        items.append(
            (
                registry.id,
                registry.name,
                "Microsoft.ContainerRegistry/registries",
                registry.location,
                registry.tags,
            )
        )
    for container_group in state.aci.groups(sub, name):
        items.append(
            (
                container_group.id,
                container_group.name,
                "Microsoft.ContainerInstance/containerGroups",
                container_group.location,
                container_group.tags,
            )
        )
    value = []
    for rid, rname, rtype, location, tags in items:
        entry: dict[str, Any] = {"id": rid, "name": rname, "type": rtype, "location": location}
        if tags is not None:
            entry["tags"] = tags
        value.append(entry)
    return Response(200, {"value": value})


# ---------------------------------------------------------------------- operations


def _operation(ctx: Ctx) -> Any:
    operation = ctx.state.operations.get(ctx.params["operation"])
    if operation is None or not scope_contains(
        f"/subscriptions/{operation.subscription_id}", f"/subscriptions/{ctx.params['sub']}"
    ):
        raise ArmError(
            404, "OperationNotFound", f"The operation '{ctx.params['operation']}' was not found."
        )
    return operation


def operation_status(ctx: Ctx) -> Response:
    return ctx.state.operations.status_response(_operation(ctx), ctx.request.path)


def operation_result(ctx: Ctx) -> Response:
    return ctx.state.operations.result_response(_operation(ctx))
