"""`--param key=value` options, read the way the flow's parameter schema says."""

from __future__ import annotations

import json
from typing import Any


def parse_params(pairs: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """`--param k=v` values, read according to the flow's parameter schema `properties`."""
    from push_pools.errors import InvalidInput

    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param '{pair}' is not of the form key=value")
        parsed[key] = _read_value(raw, properties.get(key) or {})
    return parsed


def _read_value(raw: str, schema: dict[str, Any]) -> Any:
    """JSON when it parses, except for string parameters: `--param name=123` means "123"."""
    if _is_string_only(schema) and not raw.startswith('"'):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _is_string_only(schema: dict[str, Any]) -> bool:
    kinds = (
        {schema.get("type")}
        if "type" in schema
        else {option.get("type") for option in schema.get("anyOf", []) if isinstance(option, dict)}
    )
    return "string" in kinds and kinds <= {"string", "null"}
