"""Artifact Registry v1 REST routes."""

from __future__ import annotations

from tests.emulators.gcp.artifactregistry.responses import ArtifactRegistryResponses
from tests.emulators.gcp.rest import Route, route
from tests.emulators.gcp.state import GcpState

__all__ = ["routes"]

_LOC = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_REPOSITORY = _LOC + r"/repositories/(?P<repository>[^/:]+)"


def routes(state: GcpState) -> list[Route]:
    r = ArtifactRegistryResponses(state)
    return [
        route("POST", _LOC + r"/repositories", r.create_repository),
        route("GET", _LOC + r"/repositories", r.list_repositories),
        route("GET", _REPOSITORY, r.get_repository),
        route("DELETE", _REPOSITORY, r.delete_repository),
        route("GET", _LOC + r"/operations/(?P<operation>[^/:]+)", r.get_operation),
    ]
