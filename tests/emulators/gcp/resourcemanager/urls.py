"""Resource Manager v3 REST routes."""

from __future__ import annotations

from tests.emulators.gcp.resourcemanager.responses import ProjectsResponses
from tests.emulators.gcp.rest import Route, route
from tests.emulators.gcp.state import GcpState

__all__ = ["routes"]

_PROJECT = r"/v3/projects/(?P<project>[^/:]+)"


def routes(state: GcpState) -> list[Route]:
    r = ProjectsResponses(state)
    return [
        route("GET", _PROJECT, r.get_project),
        route("POST", _PROJECT + r":getIamPolicy", r.get_iam_policy, mutating=False),
        route("POST", _PROJECT + r":setIamPolicy", r.set_iam_policy),
    ]
