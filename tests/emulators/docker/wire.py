"""The engine's wire format: requests as handlers see them, responses, streams and timestamps.

Streamed answers (build, pull, push, logs) go out chunked, one JSON object per chunk: docker-py
reads a body that is not chunked as a single JSON document. Container logs of a container
without a TTY are multiplexed: each frame is an 8-byte header (stream 1 = stdout, 2 = stderr;
3 zero bytes; the payload's length, big-endian) and then the payload.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.emulators.docker.exceptions import InvalidParameter

__all__ = [
    "ApiRequest",
    "ApiResponse",
    "decode_auth",
    "empty",
    "frame",
    "json_lines",
    "json_response",
    "rfc3339",
]

ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class ApiRequest:
    method: str
    path: str  # without the /v1.NN prefix, percent-decoded
    api_version: str | None
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    match: dict[str, str] = field(default_factory=dict)
    # True once the client closed its connection (a follow or a wait can stop then).
    client_gone: Callable[[], bool] = lambda: False

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value, as the engine reads a query (docker-py sends `dockerfile` twice
        for a Dockerfile outside the context: its name in the archive, then its text)."""
        values = self.query.get(name)
        return values[0] if values else default

    def params(self, name: str) -> list[str]:
        return [value for value in self.query.get(name, []) if value != ""]

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.param(name)
        if value is None or value == "":
            return default
        return value.lower() in ("1", "true", "yes")

    def int_param(self, name: str, default: int) -> int:
        value = self.param(name)
        if value is None or value == "":
            return default
        try:
            return int(float(value))
        except ValueError as exc:
            raise InvalidParameter(f"invalid value for {name}: {value}") from exc

    def json_param(self, name: str) -> Any:
        value = self.param(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise InvalidParameter(f"invalid JSON in {name}: {exc}") from exc

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise InvalidParameter(f"invalid JSON: {exc}") from exc


@dataclass
class ApiResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    # When set, the body goes out chunked as these pieces are produced.
    stream: Iterable[bytes] | None = None


def json_response(value: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(status=status, body=json.dumps(value).encode() + b"\n")


def empty(status: int = 204) -> ApiResponse:
    return ApiResponse(status=status, content_type="text/plain")


def json_lines(events: Iterable[dict[str, Any]]) -> ApiResponse:
    def encode() -> Iterator[bytes]:
        for event in events:
            yield json.dumps(event).encode() + b"\r\n"

    return ApiResponse(stream=encode())


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def rfc3339(ns: int | None) -> str:
    """RFC 3339 with nanoseconds, as the engine writes times; the zero time for None."""
    if ns is None:
        return ZERO_TIME
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def now_ns() -> int:
    return time.time_ns()


def decode_auth(header: str | None) -> dict[str, Any] | None:
    """X-Registry-Auth / X-Registry-Config: base64url JSON (docker-py), padding optional."""
    if not header:
        return None
    padded = header + "=" * (-len(header) % 4)
    for decoder in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            value = json.loads(decoder(padded))
        except (binascii.Error, ValueError):
            continue
        return value if isinstance(value, dict) else None
    return None
