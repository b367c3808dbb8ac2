"""Long-running operations (google.longrunning.Operation) shared by every REST API.

An operation's state is computed when it is read: a Cloud Run `run` operation is done when its
execution has finished, a repository create is done at once. `pending_reads` makes every
operation answer `done: false` that many times first (the create call's own answer included),
to exercise a client's polling.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.emulators.gcp.errors import ApiError

__all__ = ["Operation", "OperationState", "Operations"]


@dataclass
class OperationState:
    done: bool
    metadata: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: ApiError | None = None


@dataclass
class Operation:
    name: str
    project_id: str
    resolve: Callable[[], OperationState]
    reads: int = 0

    def is_done(self, pending_reads: int) -> bool:
        return self.resolve().done and self.reads > pending_reads


class Operations:
    def __init__(self) -> None:
        self.by_name: dict[str, Operation] = {}
        self.pending_reads = 0
        self.changed = threading.Condition()

    def start(
        self, prefix: str, project_id: str, resolve: Callable[[], OperationState]
    ) -> Operation:
        """A new operation named `{prefix}/operations/{uuid}` (prefix may be "")."""
        operation_id = str(uuid.uuid4())
        name = f"{prefix}/operations/{operation_id}" if prefix else f"operations/{operation_id}"
        operation = Operation(name, project_id, resolve)
        self.by_name[name] = operation
        return operation

    def finished(
        self,
        prefix: str,
        project_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
    ) -> Operation:
        state = OperationState(True, metadata, response)
        return self.start(prefix, project_id, lambda: state)

    def get(self, name: str) -> Operation:
        operation = self.by_name.get(name)
        if operation is None:
            raise ApiError("NOT_FOUND", f"Operation {name} not found.")
        return operation

    def read(self, operation: Operation) -> dict[str, Any]:
        """The operation's JSON as a client sees it now (counts as one read)."""
        state = operation.resolve()
        operation.reads += 1
        done = state.done and operation.reads > self.pending_reads
        body: dict[str, Any] = {"name": operation.name, "done": done}
        if state.metadata is not None:
            body["metadata"] = state.metadata
        if done:
            if state.error is not None:
                body["error"] = state.error.status_json()
            else:
                body["response"] = state.response or {
                    "@type": "type.googleapis.com/google.protobuf.Empty"
                }
        return body

    def notify(self) -> None:
        """Something an operation depends on changed: wake `:wait` callers."""
        with self.changed:
            self.changed.notify_all()
