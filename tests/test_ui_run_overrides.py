"""The Run form's job-variable overrides: fields per variable on top of raw JSON."""

from __future__ import annotations

from typing import Any

from push_pools.ui.run_overrides import override_fields, overrides_from_form

TEMPLATE: dict[str, Any] = {
    "job_configuration": {},
    "variables": {
        "properties": {
            "env": {"type": "object", "title": "Environment", "default": {}},
            "cpu": {"type": "integer", "title": "CPU", "default": 256},
            "stream_output": {"type": "boolean", "default": True},
        }
    },
}


def test_fields_hint_at_the_value_that_applies_when_left_empty() -> None:
    fields = {f["name"]: f["current"] for f in override_fields(TEMPLATE, {"cpu": 1024})}
    assert fields == {"env": "{}", "cpu": "1024", "stream_output": "yes"}


def test_a_filled_field_wins_over_the_same_key_in_the_json() -> None:
    errors: dict[str, str] = {}
    form = {"job_variables": '{"cpu": 512, "env": {"A": "1"}}', "jv.cpu": "2048", "jv.env": ""}
    overrides = overrides_from_form(override_fields(TEMPLATE, {}), form, errors)
    assert (overrides, errors) == ({"cpu": 2048, "env": {"A": "1"}}, {})


def test_each_wrong_entry_is_named_by_its_field() -> None:
    errors: dict[str, str] = {}
    form = {"job_variables": "[1]", "jv.cpu": "lots", "jv.stream_output": "false"}
    overrides = overrides_from_form(override_fields(TEMPLATE, {}), form, errors)
    assert overrides == {"stream_output": False}
    assert set(errors) == {"job_variables", "jv.cpu"}
    assert "not a whole number" in errors["jv.cpu"]
