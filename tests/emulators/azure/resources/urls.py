"""Microsoft.Resources routes, with the api-versions azure-mgmt-resource and
azure-mgmt-resource-subscriptions send (and earlier stable ones)."""

from __future__ import annotations

from tests.emulators.azure.resources import responses as r
from tests.emulators.azure.routing import Handler, Route

__all__ = ["OPERATION_ROUTES", "RESOURCES_ROUTES", "RESOURCES_VERSIONS", "SUBSCRIPTIONS_VERSIONS"]

RESOURCES_VERSIONS = frozenset(
    {
        "2025-04-01",
        "2024-11-01",
        "2024-07-01",
        "2024-03-01",
        "2023-07-01",
        "2022-09-01",
        "2021-04-01",
        "2020-06-01",
        "2019-10-01",
        "2019-05-01",
        "2018-05-01",
        # azure-mgmt-core's automatic provider registration (on MissingSubscriptionRegistration)
        "2016-02-01",
    }
)
SUBSCRIPTIONS_VERSIONS = frozenset(
    {"2022-12-01", "2021-01-01", "2020-01-01", "2019-11-01", "2019-06-01", "2016-06-01"}
)

_NS = "Microsoft.Resources"
_SUB = "/subscriptions/{sub}"
_RG = "/subscriptions/{sub}/resourceGroups/{rg}"
_RG_ACTION = "Microsoft.Resources/subscriptions/resourceGroups"


def _sub(
    method: str, template: str, handler: Handler, scope: str | None = None, any_access: bool = False
) -> Route:
    return Route(
        method,
        template,
        handler,
        scope=scope,
        any_access=any_access,
        namespace=_NS,
        api_versions=SUBSCRIPTIONS_VERSIONS,
    )


RESOURCES_ROUTES = [
    # Any caller with a role somewhere in a subscription may read it (ARM lists it for them).
    _sub("GET", "/subscriptions", r.list_subscriptions),
    _sub("GET", _SUB, r.get_subscription, scope=_SUB, any_access=True),
    _sub("GET", _SUB + "/locations", r.list_locations, scope=_SUB, any_access=True),
    Route(
        "GET",
        _SUB + "/providers",
        r.list_providers,
        scope=_SUB,
        any_access=True,
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "GET",
        _SUB + "/providers/{namespace}",
        r.get_provider,
        scope=_SUB,
        any_access=True,
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "POST",
        _SUB + "/providers/{namespace}/register",
        r.register_provider,
        scope=_SUB,
        action="{namespace}/register/action",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "POST",
        _SUB + "/providers/{namespace}/unregister",
        r.unregister_provider,
        scope=_SUB,
        action="{namespace}/unregister/action",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "GET",
        _SUB + "/resourcegroups",
        r.list_groups,
        scope=_SUB,
        any_access=True,
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "PUT",
        _RG,
        r.create_or_update_group,
        action=_RG_ACTION + "/write",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "GET",
        _RG,
        r.get_group,
        action=_RG_ACTION + "/read",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "HEAD",
        _RG,
        r.check_group_existence,
        action=_RG_ACTION + "/read",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "PATCH",
        _RG,
        r.update_group,
        action=_RG_ACTION + "/write",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "DELETE",
        _RG,
        r.delete_group,
        action=_RG_ACTION + "/delete",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
    Route(
        "GET",
        _RG + "/resources",
        r.list_group_resources,
        action=_RG_ACTION + "/resources/read",
        namespace=_NS,
        api_versions=RESOURCES_VERSIONS,
    ),
]

# Polling URLs: any authenticated caller (ARM checks the token, the operation id is the secret).
OPERATION_ROUTES = [
    Route(
        "GET",
        _SUB + "/providers/{namespace}/locations/{location}/operations/{operation}",
        r.operation_status,
        scope=_SUB,
    ),
    Route("GET", _SUB + "/operationresults/{operation}", r.operation_result, scope=_SUB),
]
