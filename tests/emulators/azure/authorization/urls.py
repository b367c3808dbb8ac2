"""Microsoft.Authorization routes at any scope (azure-mgmt-authorization 4 sends 2022-04-01).

They come first in the route table: `{+scope}` swallows any resource path before
/providers/Microsoft.Authorization/.
"""

from __future__ import annotations

from tests.emulators.azure.authorization import responses as r
from tests.emulators.azure.routing import Route

__all__ = ["AUTHORIZATION_ROUTES"]

_VERSIONS = frozenset(
    {
        "2022-04-01",
        "2022-01-01-preview",
        "2020-10-01-preview",
        "2020-04-01-preview",
        "2018-09-01-preview",
        "2018-01-01-preview",
        "2015-07-01",
    }
)
_NS = "Microsoft.Authorization"
_ASSIGNMENTS = "{+scope}/providers/Microsoft.Authorization/roleAssignments"
_DEFINITIONS = "{+scope}/providers/Microsoft.Authorization/roleDefinitions"
_ACTION = "Microsoft.Authorization/roleAssignments"

AUTHORIZATION_ROUTES = [
    Route(
        "PUT",
        _ASSIGNMENTS + "/{name}",
        r.create_assignment,
        action=_ACTION + "/write",
        scope="{scope}",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET",
        _ASSIGNMENTS + "/{name}",
        r.get_assignment,
        action=_ACTION + "/read",
        scope="{scope}",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "DELETE",
        _ASSIGNMENTS + "/{name}",
        r.delete_assignment,
        action=_ACTION + "/delete",
        scope="{scope}",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET",
        _ASSIGNMENTS,
        r.list_assignments,
        action=_ACTION + "/read",
        scope="{scope}",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    # Anyone signed in may read the built-in role definitions.
    Route(
        "GET",
        _DEFINITIONS + "/{guid}",
        r.get_definition,
        scope="{scope}",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
    Route(
        "GET",
        _DEFINITIONS,
        r.list_definitions,
        scope="{scope}",
        namespace=_NS,
        api_versions=_VERSIONS,
    ),
]
