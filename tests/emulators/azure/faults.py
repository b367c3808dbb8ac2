"""Injected failures and the record of every call, for tests of retries and side effects.

    emulator.faults.add(match="PUT .*/containerGroups/", status=503, times=1)
    emulator.faults.add(match="PUT .*/containerGroups/", status=503, after_effect=True)

`match` is a regular expression searched (case-insensitively) in "METHOD /path". `after` skips
that many matching calls first; `times` is how many calls fail (None: all of them). With
`after_effect=True` the call takes effect first and only its answer is replaced, which is how a
client ends up retrying a create that already happened.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.emulators.azure.wire import ArmError

__all__ = ["CallLog", "CallRecord", "Fault", "Faults"]

# The codes ARM's front door and the resource providers use for these statuses.
_DEFAULT_CODES = {
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    429: (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type.",
    ),
    500: ("InternalServerError", "Encountered internal server error. Please try again."),
    502: ("BadGateway", "The gateway did not receive a response from the service."),
    503: (
        "ServiceUnavailable",
        "The service is currently unavailable. Please retry the request after some time.",
    ),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time."),
}


@dataclass
class Fault:
    match: str
    status: int
    times: int | None = 1
    after: int = 0
    after_effect: bool = False
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    seen: int = 0  # matching calls so far
    fired: int = 0

    def error(self) -> ArmError:
        default_code, default_message = _DEFAULT_CODES.get(
            self.status, ("InjectedFault", "A fault injected by the test.")
        )
        headers = {}
        retry_after = self.retry_after
        if retry_after is None and self.status in (429, 503):
            retry_after = "0.05"
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return ArmError(
            self.status, self.code or default_code, self.message or default_message, headers
        )


@dataclass(frozen=True)
class CallRecord:
    method: str
    path: str
    query: dict[str, str]
    principal: str | None  # object id of the caller, None before authentication
    client_id: str | None
    status: int
    mutating: bool
    action: str | None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


class Faults:
    """The emulator's fault list; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        match: str,
        status: int,
        *,
        times: int | None = 1,
        after: int = 0,
        after_effect: bool = False,
        code: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
    ) -> Fault:
        fault = Fault(match, status, times, after, after_effect, code, message, retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this call triggers, if any (counting it as fired)."""
        line = f"{method} {path}"
        with self._lock:
            for fault in self._faults:
                if not re.search(fault.match, line, re.IGNORECASE):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                fault.fired += 1
                return fault
        return None


class CallLog:
    """Every call to the emulator, in order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []

    def append(self, record: CallRecord) -> None:
        with self._lock:
            self._calls.append(record)

    def records(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
