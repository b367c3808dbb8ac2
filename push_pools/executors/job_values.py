"""Reading rendered job variables into typed settings, the same way for every cloud executor:
each helper names the variable and what it must be when the value does not fit."""

from __future__ import annotations

import shlex
from typing import Any

from push_pools.errors import InvalidInput

__all__ = ["command", "flag", "string_map", "text"]


def text(values: dict[str, Any], name: str, default: str) -> str:
    value = values.get(name, default)
    if not isinstance(value, str):
        raise InvalidInput(f"job variable '{name}' must be a string, got {value!r}")
    return value.strip() or default


def flag(values: dict[str, Any], name: str, default: bool) -> bool:
    value = values.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"job variable '{name}' must be true or false, got {value!r}")
    return value


def string_map(values: dict[str, Any], name: str) -> dict[str, str]:
    value = values.get(name) or {}
    if not isinstance(value, dict):
        raise InvalidInput(
            f"job variable '{name}' must be an object of NAME: value strings, got {value!r}"
        )
    return {str(k): str(v) for k, v in value.items() if v is not None}


def command(value: Any, default: str) -> list[str]:
    """The container's argv from `command` (a string or a list of strings; empty: `default`).
    Split like a shell would, never run through one: clouds pass it as argv."""
    if value is None or value == "" or value == []:
        value = default
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return list(value)
    if not isinstance(value, str):
        raise InvalidInput(f"job variable 'command' must be a string, got {value!r}")
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise InvalidInput(f"job variable 'command' cannot be split into words: {exc}") from None
