"""A base job template's `variables` as form fields, and the template back from a posted form.

The create and edit pages both show the raw JSON as well. A posted field counts only when the
user changed it from the value the page showed (kept in a hidden copy of the template), so an
edit made in the raw JSON is not undone by the untouched field beside it.
"""

from __future__ import annotations

import json
from typing import Any

SCALARS = ("string", "integer", "number", "boolean")
ORIGINAL = "original_template"


def _kind(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "string")
    return kind if isinstance(kind, str) and kind in SCALARS else "json"


def shown(spec: dict[str, Any]) -> str:
    """How the field shows the variable's default."""
    if "default" not in spec or spec["default"] is None:
        return ""
    if _kind(spec) == "json":
        return json.dumps(spec["default"])
    if _kind(spec) == "boolean":
        return "on" if spec["default"] else ""
    return str(spec["default"])


def variable_fields(template: dict[str, Any]) -> list[dict[str, Any]]:
    """One field per job variable, holding the template's current default."""
    schema = template.get("variables") or {}
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "kind": _kind(spec),
            "title": spec.get("title", name),
            "description": spec.get("description", ""),
            "default": shown(spec),
            "required": name in required,
        }
        for name, spec in (schema.get("properties") or {}).items()
        if isinstance(spec, dict)
    ]


def typed(raw: str, kind: str) -> Any:
    words = {"integer": "a whole number", "number": "a number", "json": "valid JSON"}
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "json":
            return json.loads(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not {words[kind]}") from None
    if kind == "boolean":
        return raw in ("on", "true", "1")
    return raw


def _parse(raw: str, field: str, errors: dict[str, str]) -> dict[str, Any] | None:
    try:
        template = json.loads(raw)
    except json.JSONDecodeError as exc:
        errors[field] = f"not valid JSON: {exc.msg} (line {exc.lineno})"
        return None
    if not isinstance(template, dict):
        errors[field] = "must be a JSON object"
        return None
    return template


def template_from_form(
    form: dict[str, str], errors: dict[str, str], fallback: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The raw JSON with the changed variable fields applied; None when there is none to use
    (the server names why) or it is not JSON (then `errors` says so)."""
    raw = form.get("base_job_template", "").strip()
    if not raw:
        if fallback is None:
            return None
        raw = json.dumps(fallback)
    template = _parse(raw, "base_job_template", errors)
    if template is None:
        return None
    original = _parse(form.get(ORIGINAL) or raw, "base_job_template", {}) or {}
    before = (original.get("variables") or {}).get("properties") or {}
    properties = (template.get("variables") or {}).get("properties")
    if not isinstance(properties, dict):
        return template  # the server explains what a template's variables must look like
    for name, spec in properties.items():
        key = f"var.{name}"
        if not isinstance(spec, dict):
            continue
        kind = _kind(spec)
        # An unticked checkbox is not posted at all: absent means off, when the page showed it.
        if key not in form and not (kind == "boolean" and f"shown.{name}" in form):
            continue
        value = form.get(key, "")
        if value == shown(before.get(name) or {}):
            continue  # untouched: the raw JSON says what the default is
        if value == "" and kind != "boolean":
            spec.pop("default", None)
            continue
        try:
            spec["default"] = typed(value, kind)
        except ValueError as exc:
            errors[key] = str(exc)
    return template


def fields_of(raw: str) -> list[dict[str, Any]]:
    """The fields of a template given as JSON text; none when it is not a JSON object."""
    template = _parse(raw, "", {}) if raw else None
    return variable_fields(template) if template else []
