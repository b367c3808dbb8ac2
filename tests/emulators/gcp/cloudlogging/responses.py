"""Cloud Logging v2 entries:list on the wire (the JSON API and the gapic REST transport)."""

from __future__ import annotations

from typing import Any

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.rest import Request
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.wire import page

__all__ = ["LoggingResponses"]

_MAX_PAGE = 1000


class LoggingResponses:
    def __init__(self, state: GcpState) -> None:
        self.state = state
        self.backend = state.logging

    def list_log_entries(self, request: Request) -> dict[str, Any]:
        body = request.json()
        names = list(body.get("resourceNames") or [])
        names += [f"projects/{p}" for p in body.get("projectIds") or []]
        if not names:
            raise ApiError("INVALID_ARGUMENT", "resourceNames is required.")
        project_ids = []
        for name in names:
            if not str(name).startswith("projects/"):
                raise ApiError("INVALID_ARGUMENT", f"Unsupported resource name: {name}")
            project = self.state.project_for(
                request.principal, str(name), "logging.logEntries.list", str(name)
            )
            project_ids.append(project.project_id)
        entries = self.backend.list_entries(
            project_ids, str(body.get("filter", "")), str(body.get("orderBy", ""))
        )
        size = min(int(body.get("pageSize") or 50), _MAX_PAGE)
        chunk, token = page(entries, size, body.get("pageToken"))
        result: dict[str, Any] = {"entries": chunk}
        if token:
            result["nextPageToken"] = token
        return result
