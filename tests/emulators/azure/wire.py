"""What every route sees and answers: a parsed request, a response, ARM's error.

ARM's error body is `{"error": {"code": ..., "message": ...}}` for every resource provider;
Entra's token endpoint answers OAuth errors (`{"error": "invalid_client", ...}`) instead, so
those handlers build their own `Response`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["ArmError", "Request", "Response", "iso_now", "iso_time", "resource_not_found"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    base_url: str  # https://127.0.0.1:PORT, for the URLs an answer carries

    def json(self) -> Any:
        if not self.body:
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid.")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ArmError(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: '{exc}'.",
            ) from exc

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(errors="replace"), keep_blank_values=True))

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class ArmError(Exception):
    """An ARM failure: `raise ArmError(404, "ResourceNotFound", "...")` from any handler."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def to_response(self) -> Response:
        body = {"error": {"code": self.code, "message": self.message}}
        return Response(self.status, body, dict(self.headers))


def iso_time(moment: datetime) -> str:
    """ARM's timestamps: ISO 8601 in UTC with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_now() -> str:
    return iso_time(datetime.now(UTC))


def resource_not_found(resource_type: str, name: str, group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )
