"""Injected failures: the (after+1)-th matching call, `times` times, answers an error.

    emulator.faults.add(match=r"POST .*/jobs/[^/]+:run", status=503, times=1, after=0)
    emulator.faults.add(match=r"/google.iam.admin.v1.IAM/CreateServiceAccountKey", status=429)
    emulator.faults.add(match=r"POST .*/jobs/[^/]+:run", status=503, after_effect=True)

REST calls are matched (re.search) against "VERB /path" (no query string), gRPC calls against
their method path. A fault answers Google's error body with the canonical code of its status
(503 UNAVAILABLE, the default; 429 RESOURCE_EXHAUSTED; 409 ABORTED; ...; `code=` picks
another). An
`after_effect` fault lets the call take effect and then answers the error instead of the result.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from tests.emulators.gcp.errors import ApiError, canonical_code_for_http, http_status_for

__all__ = ["Fault", "Faults"]


@dataclass
class Fault:
    pattern: re.Pattern[str]
    status: int
    code: str
    message: str
    times: int
    after: int
    after_effect: bool
    seen: int = 0
    fired: int = 0

    def error(self) -> ApiError:
        return ApiError(self.code, self.message, http_status=self.status)


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        match: str,
        status: int | None = None,
        times: int = 1,
        after: int = 0,
        *,
        code: str | None = None,
        message: str | None = None,
        after_effect: bool = False,
    ) -> Fault:
        if status is None:
            status = http_status_for(code) if code else 503
        canonical = code or canonical_code_for_http(status)
        fault = Fault(
            re.compile(match),
            status,
            canonical,
            message or _DEFAULT_MESSAGES.get(canonical, f"Injected fault ({canonical})."),
            times,
            after,
            after_effect,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pick(self, signature: str) -> Fault | None:
        """The fault this call triggers, if any; every matching fault counts the call."""
        chosen = None
        with self._lock:
            for fault in self._faults:
                if not fault.pattern.search(signature):
                    continue
                fault.seen += 1
                if chosen is None and fault.seen > fault.after and fault.fired < fault.times:
                    fault.fired += 1
                    chosen = fault
        return chosen

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.fired < f.times]


_DEFAULT_MESSAGES = {
    "UNAVAILABLE": "The service is currently unavailable.",
    "RESOURCE_EXHAUSTED": "Quota exceeded for quota metric 'Requests' and limit "
    "'Requests per minute' of service.",
    "INTERNAL": "Internal error encountered.",
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
    "PERMISSION_DENIED": "The caller does not have permission",
    "ABORTED": "The operation was aborted.",
}
