"""Microsoft.ContainerRegistry routes (azure-mgmt-containerregistry 15 sends 2025-11-01)."""

from __future__ import annotations

from tests.emulators.azure.acr import responses as r
from tests.emulators.azure.routing import Route

__all__ = ["ACR_ROUTES"]

_VERSIONS = frozenset(
    {"2025-11-01", "2025-04-01", "2023-07-01", "2023-01-01-preview", "2022-12-01", "2019-05-01"}
)
_NS = "Microsoft.ContainerRegistry"
_TYPE = "Microsoft.ContainerRegistry/registries"
_GROUP = "/subscriptions/{sub}/resourceGroups/{rg}"
_ONE = _GROUP + "/providers/" + _TYPE + "/{name}"


ACR_ROUTES = [
    Route("POST", "/oauth2/exchange", r.exchange_token, anonymous=True, mutating=False),
    Route(
        "POST",
        "/subscriptions/{sub}/providers/" + _NS + "/checkNameAvailability",
        r.check_name_availability,
        action=_NS + "/checkNameAvailability/read",
        scope="/subscriptions/{sub}",
        mutating=False,
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "PUT",
        _ONE,
        r.create_registry,
        action=_TYPE + "/write",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET", _ONE, r.get_registry, action=_TYPE + "/read", namespace=_NS, api_versions=_VERSIONS
    ),
    Route(
        "PATCH",
        _ONE,
        r.update_registry,
        action=_TYPE + "/write",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "DELETE",
        _ONE,
        r.delete_registry,
        action=_TYPE + "/delete",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET",
        _GROUP + "/providers/" + _TYPE,
        r.list_registries_by_group,
        action=_TYPE + "/read",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET",
        "/subscriptions/{sub}/providers/" + _TYPE,
        r.list_registries_by_subscription,
        action=_TYPE + "/read",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "POST",
        _ONE + "/listCredentials",
        r.list_credentials,
        action=_TYPE + "/listCredentials/action",
        mutating=False,
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "POST",
        _ONE + "/regenerateCredential",
        r.regenerate_credential,
        action=_TYPE + "/regenerateCredential/action",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
]
