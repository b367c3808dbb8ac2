"""Microsoft.ContainerInstance routes (azure-mgmt-containerinstance 10.1 sends 2023-05-01)."""

from __future__ import annotations

from tests.emulators.azure.aci import responses as r
from tests.emulators.azure.routing import Handler, Route

__all__ = ["ACI_ROUTES"]

_VERSIONS = frozenset(
    {
        "2025-09-01",
        "2024-11-01-preview",
        "2024-10-01-preview",
        "2024-09-01-preview",
        "2024-05-01-preview",
        "2023-05-01",
        "2022-10-01-preview",
        "2022-09-01",
        "2021-10-01",
        "2021-09-01",
        "2021-07-01",
        "2021-03-01",
    }
)
_NS = "Microsoft.ContainerInstance"
_TYPE = "Microsoft.ContainerInstance/containerGroups"
_GROUP = "/subscriptions/{sub}/resourceGroups/{rg}"
_ONE = _GROUP + "/providers/" + _TYPE + "/{name}"
_GROUP_SCOPE = _GROUP + "/providers/" + _TYPE + "/{name}"


def _route(
    method: str, template: str, handler: Handler, action: str, scope: str | None = None
) -> Route:
    return Route(
        method,
        template,
        handler,
        action=action,
        scope=scope,
        namespace=_NS,
        api_versions=_VERSIONS,
    )


ACI_ROUTES = [
    _route("PUT", _ONE, r.create_or_update_group, _TYPE + "/write"),
    _route("GET", _ONE, r.get_group, _TYPE + "/read"),
    _route("PATCH", _ONE, r.update_group, _TYPE + "/write"),
    _route("DELETE", _ONE, r.delete_group, _TYPE + "/delete"),
    _route("POST", _ONE + "/stop", r.stop_group, _TYPE + "/stop/action", _GROUP_SCOPE),
    _route("POST", _ONE + "/start", r.start_group, _TYPE + "/start/action", _GROUP_SCOPE),
    _route("POST", _ONE + "/restart", r.restart_group, _TYPE + "/restart/action", _GROUP_SCOPE),
    _route(
        "GET",
        _ONE + "/containers/{container}/logs",
        r.list_logs,
        _TYPE + "/containers/logs/read",
        _GROUP_SCOPE,
    ),
    _route(
        "GET",
        _ONE + "/outboundNetworkDependenciesEndpoints",
        r.outbound_dependencies,
        _TYPE + "/outboundNetworkDependenciesEndpoints/read",
        _GROUP_SCOPE,
    ),
    _route("GET", _GROUP + "/providers/" + _TYPE, r.list_groups_by_group, _TYPE + "/read"),
    _route(
        "GET",
        "/subscriptions/{sub}/providers/" + _TYPE,
        r.list_groups_by_subscription,
        _TYPE + "/read",
    ),
]
