"""The `filters` query parameter of list operations: JSON `{"key": ["value", ...]}` (what
docker-py sends), or the older `{"key": {"value": true}}`."""

from __future__ import annotations

import json

from tests.emulators.docker.exceptions import InvalidParameter

__all__ = ["label_matches", "parse_filters"]


def parse_filters(text: str | None) -> dict[str, list[str]]:
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(f"invalid filter: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid filter: not an object")
    filters: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            filters[key] = [value for value, on in values.items() if on]
        elif isinstance(values, list):
            filters[key] = [str(value) for value in values]
        else:
            filters[key] = [str(values)]
    return filters


def label_matches(labels: dict[str, str] | None, wanted: str) -> bool:
    """A `label` filter value: `key` (present) or `key=value`."""
    name, equals, value = wanted.partition("=")
    labels = labels or {}
    return name in labels and (not equals or labels[name] == value)
