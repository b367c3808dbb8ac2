"""Every call the emulator answered, for tests: "re-provisioning made no mutating call"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Call", "CallLog"]


@dataclass(frozen=True)
class Call:
    protocol: str  # "rest", "grpc" or "oauth" (the token endpoint)
    method: str  # HTTP verb, or the gRPC method's short name (CreateServiceAccountKey)
    path: str  # URL path without the query, or the gRPC path (/google.iam.admin.v1.IAM/...)
    principal: str | None  # the caller's service-account email, None when unauthenticated
    status: int  # HTTP status (a gRPC status as its HTTP equivalent)
    code: str  # canonical code: OK, NOT_FOUND, PERMISSION_DENIED, ...
    mutating: bool  # the call asks for a change (whether or not it succeeded)
    query: str = ""


class CallLog:
    """A thread-safe list of calls, oldest first."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._lock = threading.Lock()

    def append(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def mutating(self) -> list[Call]:
        return [c for c in self.snapshot() if c.mutating]

    def __iter__(self) -> Iterator[Call]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)

    def __getitem__(self, index: int) -> Call:
        with self._lock:
            return self._calls[index]
