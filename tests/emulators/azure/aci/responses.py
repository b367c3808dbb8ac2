"""Microsoft.ContainerInstance on the wire: container groups, their lifecycle verbs, logs.

What GET shows follows ACI: secureValue is never returned (the variable comes back with its
name only), nor are registry passwords; the instanceView carries the group's state and events
and each container's currentState / previousState, restartCount and events.
"""

from __future__ import annotations

from typing import Any, cast

from tests.emulators.azure.aci.backend import validate_definition
from tests.emulators.azure.aci.models import (
    GROUP_TYPE,
    ContainerGroup,
    ContainerInstance,
    ContainerState,
    Event,
)
from tests.emulators.azure.routing import Ctx
from tests.emulators.azure.wire import ArmError, Response, iso_time, resource_not_found

__all__ = [
    "create_or_update_group",
    "delete_group",
    "get_group",
    "list_groups_by_group",
    "list_groups_by_subscription",
    "list_logs",
    "outbound_dependencies",
    "restart_group",
    "start_group",
    "stop_group",
    "update_group",
]

_NS = "Microsoft.ContainerInstance"
_ASSIGN = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
_IDENTITY_TYPES = ("SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "None")


# ---------------------------------------------------------------------- wire shapes


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "count": event.count,
        "firstTimestamp": iso_time(event.first),
        "lastTimestamp": iso_time(event.last),
        "name": event.name,
        "message": event.message,
        "type": event.type,
    }


def _state_json(state: ContainerState) -> dict[str, Any]:
    body: dict[str, Any] = {"state": state.state, "detailStatus": state.detail_status}
    if state.start_time is not None:
        body["startTime"] = iso_time(state.start_time)
    if state.exit_code is not None:
        body["exitCode"] = state.exit_code
    if state.finish_time is not None:
        body["finishTime"] = iso_time(state.finish_time)
    return body


def _container_json(container: ContainerInstance) -> dict[str, Any]:
    properties = {k: v for k, v in container.properties.items() if k != "environmentVariables"}
    properties["environmentVariables"] = [
        {"name": v["name"], "value": v["value"]} if "value" in v else {"name": v["name"]}
        for v in container.properties.get("environmentVariables") or []
    ]
    properties.setdefault("ports", [])
    view: dict[str, Any] = {
        "restartCount": container.restart_count,
        "currentState": _state_json(container.current_state),
        "events": [_event_json(e) for e in container.events],
    }
    if container.previous_state is not None:
        view["previousState"] = _state_json(container.previous_state)
    properties["instanceView"] = view
    return {"name": container.name, "properties": properties}


def _identity_json(ctx: Ctx, group: ContainerGroup) -> dict[str, Any] | None:
    if not group.identity:
        return None
    body: dict[str, Any] = {"type": group.identity.get("type")}
    if group.system_principal is not None:
        body["principalId"] = group.system_principal.object_id
        body["tenantId"] = group.system_principal.tenant_id
    assigned = {}
    for resource_id in group.user_assigned_identity_ids:
        identity = ctx.state.msi.by_id(resource_id)
        if identity is not None:
            assigned[resource_id] = {
                "principalId": identity.principal.object_id,
                "clientId": identity.principal.client_id,
            }
    if assigned:
        body["userAssignedIdentities"] = assigned
    return body


def group_json(ctx: Ctx, group: ContainerGroup) -> dict[str, Any]:
    with ctx.state.aci.lock:  # the runner's threads change states and events meanwhile
        return _group_json(ctx, group)


def _group_json(ctx: Ctx, group: ContainerGroup) -> dict[str, Any]:
    submitted = group.properties
    properties: dict[str, Any] = {
        key: value
        for key, value in submitted.items()
        if key not in ("containers", "imageRegistryCredentials", "volumes", "diagnostics")
    }
    properties["sku"] = submitted.get("sku", "Standard")
    properties["provisioningState"] = group.provisioning_state
    properties["containers"] = [_container_json(c) for c in group.containers]
    properties["initContainers"] = submitted.get("initContainers", [])
    properties["restartPolicy"] = group.restart_policy
    properties["imageRegistryCredentials"] = [
        {k: v for k, v in credential.items() if k != "password"}
        for credential in group.registry_credentials
    ]
    if "volumes" in submitted:
        # Secret volumes and storage keys are write-only, as on ACI.
        properties["volumes"] = [
            {k: v for k, v in volume.items() if k != "secret"} for volume in submitted["volumes"]
        ]
    if "diagnostics" in submitted:
        analytics = dict((submitted["diagnostics"] or {}).get("logAnalytics") or {})
        analytics.pop("workspaceKey", None)
        properties["diagnostics"] = {"logAnalytics": analytics}
    properties["instanceView"] = {
        "events": [_event_json(e) for e in group.events],
        "state": group.state,
    }
    body: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "type": GROUP_TYPE,
        "location": group.location,
        "properties": properties,
    }
    if group.tags is not None:
        body["tags"] = group.tags
    if group.zones:
        body["zones"] = group.zones
    identity = _identity_json(ctx, group)
    if identity is not None:
        body["identity"] = identity
    return body


# ---------------------------------------------------------------------- handlers


def _existing(ctx: Ctx) -> ContainerGroup:
    ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    found = ctx.state.aci.get(ctx.params["sub"], ctx.params["rg"], ctx.params["name"])
    if found is None:
        raise resource_not_found(GROUP_TYPE, ctx.params["name"], ctx.params["rg"])
    return found


def _check_identity(ctx: Ctx, group_id: str, identity: Any) -> None:
    if identity is None:
        return
    kind = identity.get("type") if isinstance(identity, dict) else None
    if kind not in _IDENTITY_TYPES:
        raise ArmError(
            400,
            "InvalidIdentityType",
            f"The identity type '{kind}' is invalid. Valid values: {', '.join(_IDENTITY_TYPES)}.",
        )
    assigned = list((identity.get("userAssignedIdentities") or {}).keys())
    if not assigned or ctx.principal is None:
        return
    ctx.state.require_linked(ctx.principal, f"{GROUP_TYPE}/write", group_id, _ASSIGN, assigned)
    for resource_id in assigned:
        if ctx.state.msi.by_id(resource_id) is None:
            raise ArmError(
                400,
                "FailedIdentityOperation",
                f"Identity operation for resource '{group_id}' failed with error 'Failed to "
                "perform resource identity operation. Status: 'NotFound'. Response: "
                f'\'{{"error":{{"code":"NotFound","message":"Resource \'{resource_id}\' '
                "was not found.\"}}'.'.",
            )


def create_or_update_group(ctx: Ctx) -> Response:
    state = ctx.state
    group = state.require_group(ctx.params["sub"], ctx.params["rg"])
    body = ctx.request.json()
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content was invalid.")
    name = ctx.params["name"]
    location = state.require_location(body.get("location"), GROUP_TYPE)
    properties = cast("dict[str, Any]", body.get("properties"))  # validated just below
    validate_definition(name, location, properties, state.aci_controls.limits_for(location))
    candidate = ContainerGroup(
        subscription_id=group.subscription_id,
        resource_group=group.name,
        name=name,
        location=location,
        tags=body.get("tags"),
        properties=properties,
        identity=body.get("identity"),
        zones=body.get("zones"),
        containers=[
            ContainerInstance(c["name"], c["properties"]) for c in properties["containers"]
        ],
    )
    _check_identity(ctx, candidate.id, candidate.identity)
    stored, created, _ = state.aci.create_or_update(candidate)
    wants_system = "SystemAssigned" in str((stored.identity or {}).get("type", ""))
    if wants_system and stored.system_principal is None:
        stored.system_principal = state.directory.add(
            name,
            kind="ManagedIdentity",
            with_secret=False,
            replication_seconds=state.principal_replication_seconds,
        )
    generation = stored.generation
    operation = state.operations.start(
        stored.subscription_id,
        _NS,
        stored.location,
        lambda: state.aci.deployment_status(stored, generation),
    )
    headers = state.operations.headers(operation, ctx.base_url, ctx.request.api_version or "")
    return Response(201 if created else 200, group_json(ctx, stored), headers)


def get_group(ctx: Ctx) -> Response:
    return Response(200, group_json(ctx, _existing(ctx)))


def update_group(ctx: Ctx) -> Response:
    group = _existing(ctx)
    body = ctx.request.json()
    if "tags" in body:
        group.tags = body["tags"]
    return Response(200, group_json(ctx, group))


def list_groups_by_group(ctx: Ctx) -> Response:
    ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    groups = ctx.state.aci.groups(ctx.params["sub"], ctx.params["rg"])
    return Response(200, {"value": [group_json(ctx, g) for g in groups]})


def list_groups_by_subscription(ctx: Ctx) -> Response:
    groups = ctx.state.aci.groups(ctx.params["sub"])
    return Response(200, {"value": [group_json(ctx, g) for g in groups]})


def delete_group(ctx: Ctx) -> Response:
    state = ctx.state
    state.require_group(ctx.params["sub"], ctx.params["rg"])
    found = state.aci.get(ctx.params["sub"], ctx.params["rg"], ctx.params["name"])
    if found is None:
        return Response(204)
    state.delete_container_group(found)
    operation = state.operations.start(
        found.subscription_id, _NS, found.location, lambda: state.aci.deletion_status(found)
    )
    headers = state.operations.headers(
        operation, ctx.base_url, ctx.request.api_version or "", location=True
    )
    return Response(202, None, headers)


def stop_group(ctx: Ctx) -> Response:
    ctx.state.aci.stop(_existing(ctx))
    return Response(204)


def _deployment_response(ctx: Ctx, group: ContainerGroup, status: int) -> Response:
    state = ctx.state
    generation = group.generation
    operation = state.operations.start(
        group.subscription_id,
        _NS,
        group.location,
        lambda: state.aci.deployment_status(group, generation),
    )
    return Response(
        status,
        None,
        state.operations.headers(operation, ctx.base_url, ctx.request.api_version or ""),
    )


def start_group(ctx: Ctx) -> Response:
    group = _existing(ctx)
    ctx.state.aci.start(group)
    return _deployment_response(ctx, group, 202)


def restart_group(ctx: Ctx) -> Response:
    group = _existing(ctx)
    ctx.state.aci.restart(group)
    return _deployment_response(ctx, group, 204)


def list_logs(ctx: Ctx) -> Response:
    group = _existing(ctx)
    container = group.container(ctx.params["container"])
    if container is None:
        raise ArmError(
            404,
            "ContainerNotFound",
            f"The container '{ctx.params['container']}' in container group '{group.name}' was "
            "not found.",
        )
    run = container.run
    lines = list(run.output) if run is not None else []
    tail = ctx.request.query.get("tail")
    if tail is not None and tail.isdigit():
        lines = lines[-int(tail) :] if int(tail) else []
    content = "".join(line + "\n" for line in lines)
    return Response(200, {"content": content})


def outbound_dependencies(ctx: Ctx) -> Response:
    _existing(ctx)
    return Response(200, [])
