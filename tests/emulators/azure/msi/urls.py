"""Microsoft.ManagedIdentity routes (azure-mgmt-msi 7 sends 2024-11-30)."""

from __future__ import annotations

from tests.emulators.azure.msi import responses as r
from tests.emulators.azure.routing import Route

__all__ = ["MSI_ROUTES"]

_VERSIONS = frozenset({"2024-11-30", "2023-07-31-preview", "2023-01-31", "2018-11-30"})
_NS = "Microsoft.ManagedIdentity"
_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
_GROUP = "/subscriptions/{sub}/resourceGroups/{rg}"
_ONE = _GROUP + "/providers/" + _TYPE + "/{name}"

MSI_ROUTES = [
    Route(
        "PUT",
        _ONE,
        r.create_or_update_identity,
        action=_TYPE + "/write",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET", _ONE, r.get_identity, action=_TYPE + "/read", namespace=_NS, api_versions=_VERSIONS
    ),
    Route(
        "PATCH",
        _ONE,
        r.update_identity,
        action=_TYPE + "/write",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "DELETE",
        _ONE,
        r.delete_identity,
        action=_TYPE + "/delete",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET",
        _GROUP + "/providers/" + _TYPE,
        r.list_identities_by_group,
        action=_TYPE + "/read",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET",
        "/subscriptions/{sub}/providers/" + _TYPE,
        r.list_identities_by_subscription,
        action=_TYPE + "/read",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
]
