"""JSON wire helpers every API shares: timestamps, paging, proto messages as Google's JSON."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from tests.emulators.gcp.errors import ApiError

__all__ = ["message_json", "packed", "page", "parse_message", "rfc3339", "to_datetime"]

T = TypeVar("T")


def to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def rfc3339(seconds: float) -> str:
    return to_datetime(seconds).isoformat(timespec="microseconds").replace("+00:00", "Z")


def message_json(message: Any) -> dict[str, Any]:
    """A proto-plus message as Google's JSON (camelCase, enums by name, defaults left out)."""
    text = type(message).to_json(message, use_integers_for_enums=False, indent=None)
    result: dict[str, Any] = json.loads(text)
    return result


def packed(type_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A google.protobuf.Any in JSON: the message's fields plus its `@type`."""
    return {"@type": f"type.googleapis.com/{type_name}", **body}


def parse_message(cls: type[T], body: bytes | str | dict[str, Any]) -> T:
    """The request body as `cls`; unknown fields are an error, as Google's JSON parser has it."""
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    if isinstance(text, bytes):
        text = text.decode() or "{}"
    try:
        result: T = cls.from_json(text or "{}", ignore_unknown_fields=False)  # type: ignore[attr-defined]
    except Exception as exc:  # json_format.ParseError and friends: anything unparsable
        raise ApiError("INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from exc
    return result


def page(items: Sequence[T], page_size: int | str | None, token: str | None) -> tuple[list[T], str]:
    """One page of `items` and the token of the next ("" after the last)."""
    try:
        size = int(page_size or 0)
        start = int(base64.urlsafe_b64decode((token or "").encode()).decode() or 0) if token else 0
    except ValueError as exc:
        raise ApiError("INVALID_ARGUMENT", "Invalid page token or page size.") from exc
    if size <= 0:
        size = 500
    chunk = list(items[start : start + size])
    following = start + size
    next_token = (
        base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(items) else ""
    )
    return chunk, next_token
