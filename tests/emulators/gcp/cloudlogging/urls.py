"""Cloud Logging v2 REST routes."""

from __future__ import annotations

from tests.emulators.gcp.cloudlogging.responses import LoggingResponses
from tests.emulators.gcp.rest import Route, route
from tests.emulators.gcp.state import GcpState

__all__ = ["routes"]


def routes(state: GcpState) -> list[Route]:
    r = LoggingResponses(state)
    return [route("POST", r"/v2/entries:list", r.list_log_entries, mutating=False)]
