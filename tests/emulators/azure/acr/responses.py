"""Microsoft.ContainerRegistry on the wire: registries, name checks, admin credentials."""

from __future__ import annotations

from typing import Any

from tests.emulators.azure.acr.models import REGISTRY_TYPE, Registry, valid_registry_name
from tests.emulators.azure.routing import Ctx
from tests.emulators.azure.wire import ArmError, Response, iso_time, resource_not_found

__all__ = [
    "check_name_availability",
    "create_registry",
    "delete_registry",
    "exchange_token",
    "get_registry",
    "list_credentials",
    "list_registries_by_group",
    "list_registries_by_subscription",
    "regenerate_credential",
    "update_registry",
]

_SKUS = ("Basic", "Standard", "Premium")
_INVALID_NAME = (
    "Registry names may contain only alpha numeric characters and must be between 5 and 50 "
    "characters."
)


def registry_json(registry: Registry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": registry.id,
        "name": registry.name,
        "type": REGISTRY_TYPE,
        "location": registry.location,
        "sku": {"name": registry.sku, "tier": registry.sku},
        "properties": {
            "loginServer": registry.login_server,
            "creationDate": iso_time(registry.created_at),
            "provisioningState": registry.provisioning_state,
            "adminUserEnabled": registry.admin_user_enabled,
            "encryption": {"status": "disabled"},
            "dataEndpointEnabled": False,
            "dataEndpointHostNames": [],
            "privateEndpointConnections": [],
            "publicNetworkAccess": "Enabled",
            "networkRuleBypassOptions": "AzureServices",
            "zoneRedundancy": "Disabled",
            "anonymousPullEnabled": False,
        },
    }
    if registry.tags is not None:
        body["tags"] = registry.tags
    return body


def _existing(ctx: Ctx) -> Registry:
    ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    found = ctx.state.acr.get(ctx.params["sub"], ctx.params["rg"], ctx.params["name"])
    if found is None:
        raise resource_not_found(REGISTRY_TYPE, ctx.params["name"], ctx.params["rg"])
    return found


def check_name_availability(ctx: Ctx) -> Response:
    body = ctx.request.json()
    name = str(body.get("name", ""))
    if body.get("type", REGISTRY_TYPE).lower() != REGISTRY_TYPE.lower():
        raise ArmError(
            400,
            "InvalidResourceType",
            f"The resource type '{body.get('type')}' is not supported by this API.",
        )
    if not valid_registry_name(name):
        return Response(
            200, {"nameAvailable": False, "reason": "Invalid", "message": _INVALID_NAME}
        )
    if ctx.state.acr.name_taken(name):
        return Response(
            200,
            {
                "nameAvailable": False,
                "reason": "AlreadyExists",
                "message": f"The registry {name} is already in use.",
            },
        )
    return Response(200, {"nameAvailable": True})


def _sku(body: dict[str, Any], default: str | None) -> str:
    sku = (body.get("sku") or {}).get("name", default)
    if sku not in _SKUS:
        raise ArmError(
            400,
            "InvalidSku",
            f"The sku '{sku}' is invalid. Valid values: Basic, Standard, Premium.",
        )
    return str(sku)


def create_registry(ctx: Ctx) -> Response:
    state = ctx.state
    group = state.require_group(ctx.params["sub"], ctx.params["rg"])
    name = ctx.params["name"]
    body = ctx.request.json()
    location = state.require_location(body.get("location"), REGISTRY_TYPE)
    properties = body.get("properties") or {}
    existing = state.acr.get(group.subscription_id, group.name, name)
    if existing is not None:
        existing.sku = _sku(body, existing.sku)
        existing.tags = body.get("tags", existing.tags)
        existing.admin_user_enabled = bool(
            properties.get("adminUserEnabled", existing.admin_user_enabled)
        )
        return Response(200, registry_json(existing))
    if not valid_registry_name(name):
        raise ArmError(400, "InvalidParameter", _INVALID_NAME)
    if state.acr.name_taken(name):
        raise ArmError(
            400,
            "AlreadyInUse",
            f"The registry DNS name {name.lower()}.azurecr.io is already in use. You can check "
            "if the name is already claimed using following API: "
            "https://docs.microsoft.com/en-us/rest/api/containerregistry/registries/"
            "checknameavailability",
        )
    registry = state.add_registry(
        group.subscription_id,
        group.name,
        name,
        location,
        body.get("tags"),
        sku=_sku(body, None),
        admin_user_enabled=bool(properties.get("adminUserEnabled", False)),
    )
    # Creation is instant here, so the answer is final: no Azure-AsyncOperation to poll. (This
    # SDK reads Retry-After as an integer: polling would cost the caller at least a second.)
    return Response(201, registry_json(registry))


def get_registry(ctx: Ctx) -> Response:
    return Response(200, registry_json(_existing(ctx)))


def update_registry(ctx: Ctx) -> Response:
    registry = _existing(ctx)
    body = ctx.request.json()
    if "tags" in body:
        registry.tags = body["tags"]
    if "sku" in body:
        registry.sku = _sku(body, registry.sku)
    properties = body.get("properties") or {}
    if "adminUserEnabled" in properties:
        registry.admin_user_enabled = bool(properties["adminUserEnabled"])
    return Response(200, registry_json(registry))


def delete_registry(ctx: Ctx) -> Response:
    state = ctx.state
    state.require_group(ctx.params["sub"], ctx.params["rg"])
    found = state.acr.get(ctx.params["sub"], ctx.params["rg"], ctx.params["name"])
    if found is None:
        return Response(204)
    state.acr.remove(found)
    state.authorization.delete_within(found.id)
    return Response(200)


def list_registries_by_group(ctx: Ctx) -> Response:
    ctx.state.require_group(ctx.params["sub"], ctx.params["rg"])
    registries = ctx.state.acr.registries(ctx.params["sub"], ctx.params["rg"])
    return Response(200, {"value": [registry_json(r) for r in registries]})


def list_registries_by_subscription(ctx: Ctx) -> Response:
    registries = ctx.state.acr.registries(ctx.params["sub"])
    return Response(200, {"value": [registry_json(r) for r in registries]})


def _credentials(registry: Registry) -> dict[str, Any]:
    if not registry.admin_user_enabled:
        raise ArmError(
            400,
            "UnAuthorizedForCredentialOperations",
            f"Cannot perform credential operations for {registry.id} as admin user is "
            "disabled. Kindly enable admin user as per docs: https://docs.microsoft.com/en-us/"
            "azure/container-registry/container-registry-authentication#admin-account",
        )
    return {
        "username": registry.name,
        "passwords": [
            {"name": "password", "value": registry.passwords[0]},
            {"name": "password2", "value": registry.passwords[1]},
        ],
    }


def list_credentials(ctx: Ctx) -> Response:
    return Response(200, _credentials(_existing(ctx)))


def regenerate_credential(ctx: Ctx) -> Response:
    registry = _existing(ctx)
    which = ctx.request.json().get("name")
    _credentials(registry)
    first, second = registry.passwords
    fresh = ctx.state.fresh_secret()
    registry.passwords = (fresh, second) if which == "password" else (first, fresh)
    return Response(200, _credentials(registry))


def exchange_token(ctx: Ctx) -> Response:
    """ACR's data-plane token exchange (`POST https://<registry>/oauth2/exchange`): an Entra
    access token for a refresh token that `docker push` then uses as the password of user
    00000000-0000-0000-0000-000000000000. Served on the ARM port: the login server is the
    `service` field, as a client sends it."""
    import secrets

    from tests.emulators.azure.entra.models import TokenError

    form = ctx.request.form()
    if form.get("grant_type") != "access_token":
        return Response(400, {"errors": [{"code": "UNSUPPORTED", "message": "grant_type"}]})
    registry = ctx.state.acr.by_login_server(form.get("service", ""))
    if registry is None:
        return Response(404, {"errors": [{"code": "NOT_FOUND", "message": "registry not found"}]})
    try:
        principal = ctx.state.directory.verify_token(form.get("access_token", ""))
    except TokenError as exc:
        return Response(401, {"errors": [{"code": "UNAUTHORIZED", "message": str(exc)}]})
    refresh = secrets.token_urlsafe(32)
    ctx.state.acr.refresh_tokens[refresh] = (principal.object_id, registry.login_server)
    return Response(200, {"refresh_token": refresh})
