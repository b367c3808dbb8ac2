"""Long-running operations as ARM runs them: 201/202 with an Azure-AsyncOperation URL (and a
Location URL for deletes), polled until `{"status": "Succeeded" | "Failed"}`.

Each operation asks a function for its status whenever it is polled, so it follows the
resource's real state (a container group's create succeeds when its containers run). Every
answer carries a small Retry-After: without one the SDK waits its default 30 s between polls.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.emulators.azure.wire import Response, iso_time

__all__ = ["FAILED", "IN_PROGRESS", "SUCCEEDED", "Operation", "Operations", "StatusFn"]

IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"

# (status, error) where error is ARM's {"code": ..., "message": ...} for a failure.
StatusFn = Callable[[], tuple[str, dict[str, str] | None]]


@dataclass
class Operation:
    id: str
    subscription_id: str
    namespace: str
    location: str
    status_fn: StatusFn
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: datetime | None = None
    final: tuple[str, dict[str, str] | None] | None = None

    def status(self) -> tuple[str, dict[str, str] | None]:
        # A finished operation stays finished, whatever happens to the resource later.
        if self.final is not None:
            return self.final
        status, error = self.status_fn()
        if status != IN_PROGRESS:
            self.final = (status, error)
            self.ended = datetime.now(UTC)
        return status, error


class Operations:
    def __init__(self, retry_after: str = "0.05") -> None:
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._operations: dict[str, Operation] = {}

    def start(
        self, subscription_id: str, namespace: str, location: str, status_fn: StatusFn
    ) -> Operation:
        operation = Operation(str(uuid.uuid4()), subscription_id, namespace, location, status_fn)
        with self._lock:
            self._operations[operation.id] = operation
        return operation

    def get(self, operation_id: str) -> Operation | None:
        with self._lock:
            return self._operations.get(operation_id.lower())

    # ------------------------------------------------------------------ wire

    def headers(
        self, operation: Operation, base_url: str, api_version: str, *, location: bool = False
    ) -> dict[str, str]:
        headers = {
            "Azure-AsyncOperation": (
                f"{base_url}/subscriptions/{operation.subscription_id}/providers/"
                f"{operation.namespace}/locations/{operation.location}/operations/"
                f"{operation.id}?api-version={api_version}"
            ),
            "Retry-After": self.retry_after,
        }
        if location:
            headers["Location"] = self.location_url(operation, base_url, api_version)
        return headers

    def location_url(self, operation: Operation, base_url: str, api_version: str) -> str:
        return (
            f"{base_url}/subscriptions/{operation.subscription_id}/operationresults/"
            f"{operation.id}?api-version={api_version}"
        )

    def status_response(self, operation: Operation, path: str) -> Response:
        status, error = operation.status()
        body: dict[str, Any] = {
            "id": path,
            "name": operation.id,
            "status": status,
            "startTime": iso_time(operation.started),
        }
        if operation.ended is not None:
            body["endTime"] = iso_time(operation.ended)
        if error is not None:
            body["error"] = error
        return Response(200, body, {"Retry-After": self.retry_after})

    def result_response(self, operation: Operation) -> Response:
        """The Location URL's answer: 202 while running, then 200 (or the failure)."""
        status, error = operation.status()
        if status == IN_PROGRESS:
            return Response(202, None, {"Retry-After": self.retry_after})
        if status == FAILED:
            return Response(400, {"error": error or {"code": "Failed", "message": "Failed"}})
        return Response(200, None)
