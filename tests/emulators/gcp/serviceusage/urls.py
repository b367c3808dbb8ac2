"""Service Usage v1 REST routes."""

from __future__ import annotations

from tests.emulators.gcp.rest import Route, route
from tests.emulators.gcp.serviceusage.responses import ServiceUsageResponses
from tests.emulators.gcp.state import GcpState

__all__ = ["routes"]

_PARENT = r"/v1/projects/(?P<project>[^/]+)/services"
_SERVICE = _PARENT + r"/(?P<service>[^/:]+)"


def routes(state: GcpState) -> list[Route]:
    r = ServiceUsageResponses(state)
    return [
        route("GET", _PARENT, r.list_services),
        route("POST", _PARENT + r":batchEnable", r.batch_enable_services),
        route("GET", _SERVICE, r.get_service),
        route("POST", _SERVICE + r":enable", r.enable_service),
        route("POST", _SERVICE + r":disable", r.disable_service),
        route("GET", r"/v1/operations/(?P<operation>[^/:]+)", r.get_operation),
    ]
