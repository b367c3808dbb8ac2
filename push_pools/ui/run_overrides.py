"""A run's job-variable overrides on the Run form: one optional field per variable of the
deployment's pool (left empty, the pool's or the deployment's value applies), plus raw JSON for
anything the fields cannot say. A field that is filled in wins over the same key in the JSON.
"""

from __future__ import annotations

import json
from typing import Any

from push_pools.ui import job_form

PREFIX = "jv."
RAW = "job_variables"


def _current(
    spec: dict[str, Any], kind: str, deployment_value: Any, set_by_deployment: bool
) -> str:
    """What applies when the field is left empty, as the field's hint."""
    value = deployment_value if set_by_deployment else spec.get("default")
    if value is None or value == "":
        return ""
    if kind == "json":
        return json.dumps(value)
    if kind == "boolean":
        return "yes" if value else "no"
    return str(value)


def override_fields(
    template: dict[str, Any], deployment_variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """One empty field per variable of the pool's template, hinting at the value that applies."""
    fields = []
    properties = (template.get("variables") or {}).get("properties") or {}
    for field in job_form.variable_fields(template):
        spec = properties.get(field["name"]) or {}
        name = field["name"]
        fields.append(
            {
                **field,
                "current": _current(
                    spec,
                    field["kind"],
                    deployment_variables.get(name),
                    name in deployment_variables,
                ),
            }
        )
    return fields


def given(form: dict[str, str], errors: dict[str, str]) -> bool:
    """Whether the user gave or got told about overrides, so the form shows them open."""
    keys = [k for k, v in form.items() if v.strip()] + list(errors)
    return any(k == RAW or k.startswith(PREFIX) for k in keys)


def overrides_from_form(
    fields: list[dict[str, Any]], form: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    """The overrides the user gave; `errors` names each field that is not its kind."""
    overrides: dict[str, Any] = {}
    raw = form.get(RAW, "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors[RAW] = f"not valid JSON: {exc.msg}"
        else:
            if isinstance(parsed, dict):
                overrides.update(parsed)
            else:
                errors[RAW] = 'must be a JSON object, e.g. {"env": {"NAME": "value"}}'
    for field in fields:
        key = PREFIX + field["name"]
        value = form.get(key, "").strip()
        if not value:
            continue
        if field["kind"] == "boolean":
            overrides[field["name"]] = value == "true"
            continue
        try:
            overrides[field["name"]] = job_form.typed(value, field["kind"])
        except ValueError as exc:
            errors[key] = str(exc)
    return overrides


def beside(message: str, fields: list[dict[str, Any]], form: dict[str, str]) -> str:
    """The form field the server's message about job variables is about: the variable's own
    field when the user filled it in, else the raw JSON."""
    for field in fields:
        named = f"'{field['name']}'" in message or f"{field['name']}:" in message
        if named and form.get(PREFIX + field["name"], "").strip():
            return PREFIX + field["name"]
    return RAW
