"""Google API errors: one exception whose canonical code decides both the REST and gRPC wire.

Google's REST error body is `{"error": {"code": <HTTP>, "message": ..., "status": <CODE>}}`
(JSON APIs such as Cloud Storage add an `errors` list with a `reason`); over gRPC the same
canonical code is the call's status.
"""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]

__all__ = [
    "ApiError",
    "canonical_code_for_http",
    "grpc_status_for",
    "http_status_for",
    "permission_denied",
]

# Canonical code -> HTTP status, as google.rpc.Code documents the mapping.
_HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
# HTTP status -> the canonical code a fault with only a status answers.
_CODE_FOR_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# The `reason` Cloud Storage's JSON API puts in `errors[]` for each HTTP status.
_STORAGE_REASON = {
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    503: "backendError",
}


def http_status_for(code: str) -> int:
    return _HTTP_STATUS.get(code, 500)


def canonical_code_for_http(status: int) -> str:
    if status in _CODE_FOR_HTTP:
        return _CODE_FOR_HTTP[status]
    return "INTERNAL" if status >= 500 else "UNKNOWN"


def grpc_status_for(code: str) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN)


class ApiError(Exception):
    """A call's failure: `code` is the canonical name (NOT_FOUND, ABORTED, ...)."""

    def __init__(self, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or http_status_for(code)

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return grpc_status_for(self.code)

    def body(self) -> dict[str, Any]:
        reason = _STORAGE_REASON.get(self.http_status, "backendError")
        return {
            "error": {
                "code": self.http_status,
                "message": self.message,
                "status": self.code,
                "errors": [{"message": self.message, "domain": "global", "reason": reason}],
            }
        }

    def status_json(self) -> dict[str, Any]:
        """The google.rpc.Status an operation's `error` carries."""
        return {"code": self.grpc_code.value[0], "message": self.message}


def permission_denied(permission: str, resource: str | None = None) -> ApiError:
    where = f"resource '{resource}'" if resource else "resource"
    return ApiError(
        "PERMISSION_DENIED",
        f"Permission '{permission}' denied on {where} (or it may not exist).",
    )
