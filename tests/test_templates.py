"""Base job templates and the work-pool type registry, as a user of a work pool sees them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from push_pools import pool_types
from push_pools.errors import InvalidInput
from push_pools.templates import (
    block_type_of,
    default_values,
    merge_job_variables,
    missing_required,
    placeholders,
    render_job_configuration,
    validate_base_job_template,
    validate_job_variables,
)

PREFECT_TEMPLATES = Path(__file__).parent / "fixtures" / "prefect_templates"
PREFECT_NAMES = [
    "process",
    "docker",
    "ecs",
    "cloud-run-v2",
    "azure-container-instance",
    "kubernetes",
]


def _prefect(name: str) -> dict[str, Any]:
    path = PREFECT_TEMPLATES / f"{name}.json"
    template: dict[str, Any] = json.loads(path.read_text())
    return template


def _process() -> dict[str, Any]:
    return pool_types.get("process").default_template()


def _template(job_configuration: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {
        "job_configuration": job_configuration,
        "variables": {"type": "object", "properties": properties},
    }


# --------------------------------------------------------------------------- process type


def test_process_template_validates_and_renders_with_defaults() -> None:
    template = _process()
    assert validate_base_job_template(template) is template

    rendered = render_job_configuration(template, {})

    assert rendered == {
        "command": None,
        "env": {},
        "labels": {},
        "name": None,
        "stream_output": True,
        "working_dir": None,
    }


def test_process_template_documents_every_variable() -> None:
    properties = _process()["variables"]["properties"]
    assert set(properties) == {"command", "env", "labels", "name", "stream_output", "working_dir"}
    for name, schema in properties.items():
        assert schema.get("title"), name
        assert len(schema.get("description", "")) > 20, name
    assert "push_pools.engine" in properties["command"]["description"]


def test_process_template_is_fresh_each_call() -> None:
    first = _process()
    first["variables"]["properties"]["env"]["default"]["LEAK"] = "1"
    assert _process()["variables"]["properties"]["env"]["default"] == {}


def test_unknown_pool_type_lists_known_types() -> None:
    with pytest.raises(InvalidInput) as raised:
        pool_types.get("lambda")
    assert "'lambda'" in raised.value.message
    assert "process" in raised.value.message
    assert "process" in pool_types.names()


# --------------------------------------------------------------------------- rendering


def test_whole_placeholder_keeps_the_value_type() -> None:
    template = _template(
        {"cpu": "{{ cpu }}", "env": "{{env}}", "spot": "{{  spot  }}", "nested": ["{{ cpu }}"]},
        cpu={"type": "integer"},
        env={"type": "object", "additionalProperties": {"type": "string"}},
        spot={"type": "boolean"},
    )

    rendered = render_job_configuration(template, {"cpu": 512, "env": {"A": "1"}, "spot": False})

    assert rendered == {"cpu": 512, "env": {"A": "1"}, "spot": False, "nested": [512]}
    assert placeholders(template["job_configuration"]) == {"cpu", "env", "spot"}


def test_embedded_placeholder_is_stringified_and_unset_is_empty() -> None:
    template = _template(
        {"arn": "arn:aws:ecs:{{ region }}:{{ account }}:cluster/{{ cluster }}"},
        region={"type": "string", "default": "eu-west-1"},
        account={"type": "integer"},
        cluster={"type": "string"},
    )

    rendered = render_job_configuration(template, {"account": 1234})

    assert rendered == {"arn": "arn:aws:ecs:eu-west-1:1234:cluster/"}


def test_render_does_not_mutate_the_template_or_share_values() -> None:
    template = _prefect("ecs")
    before = copy.deepcopy(template)

    rendered = render_job_configuration(template, {"env": {"A": "1"}, "cpu": 1024})
    rendered["env"]["B"] = "2"

    assert template == before
    # ECS places env twice; changing one copy must not change the other.
    container = rendered["task_run_request"]["overrides"]["containerOverrides"][0]
    assert container["environment"] == {"A": "1"}
    assert container["cpu"] == 1024


# --------------------------------------------------------------------------- merging


def test_env_is_merged_key_by_key_across_three_layers() -> None:
    pool = {"env": {"LOG": "info", "REGION": "eu"}, "stream_output": True}
    deployment = {"env": {"REGION": "us", "DB": "prod"}}
    run = {"env": {"LOG": "debug"}, "stream_output": False}

    merged = merge_job_variables(pool, deployment, run)

    assert merged == {
        "env": {"LOG": "debug", "REGION": "us", "DB": "prod"},
        "stream_output": False,
    }
    assert pool["env"] == {"LOG": "info", "REGION": "eu"}  # inputs untouched


def test_none_in_a_later_layer_does_not_erase() -> None:
    merged = merge_job_variables(
        {"name": "nightly", "env": {"A": "1"}},
        None,
        {"name": None, "env": {"A": None, "B": "2"}},
    )
    assert merged == {"name": "nightly", "env": {"A": "1", "B": "2"}}


def test_render_applies_defaults_under_values() -> None:
    rendered = render_job_configuration(_process(), {"env": {"X": "1"}, "stream_output": None})
    assert rendered["stream_output"] is True
    assert rendered["env"] == {"X": "1"}


# --------------------------------------------------------------------------- job variables


def test_valid_job_variables_pass() -> None:
    validate_job_variables(_process(), {"env": {"A": "1"}, "stream_output": False})
    validate_job_variables(_prefect("ecs"), {"cpu": 1024, "launch_type": "EC2"})


def test_wrong_type_names_variable_expected_and_given() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_job_variables(_prefect("ecs"), {"cpu": "abc"})
    assert raised.value.message == "job variable 'cpu': expected integer, got 'abc'"


def test_unknown_key_is_named_with_allowed_keys() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_job_variables(_process(), {"stream_outptu": False})
    message = raised.value.message
    assert "'stream_outptu'" in message
    assert "did you mean 'stream_output'" in message
    assert "command, env, labels, name, stream_output, working_dir" in message


def test_bad_nested_env_value_names_its_path() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_job_variables(_process(), {"env": {"FOO": 1, "OK": "x"}})
    assert raised.value.message == "job variable 'env.FOO': expected string, got 1"


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_job_variables(_prefect("ecs"), {"cpu": "x", "launch_type": "MOON", "nope": 1})
    parts = raised.value.message.split("; ")
    assert any(p.startswith("unknown job variable 'nope'") for p in parts)
    assert "job variable 'cpu': expected integer, got 'x'" in parts
    assert any(p.startswith("job variable 'launch_type': expected one of 'FARGATE'") for p in parts)


def test_required_is_checked_separately() -> None:
    template = _prefect("azure-container-instance")
    validate_job_variables(template, {"cpu": 2.0})  # partial override: no error
    assert missing_required(template, {"cpu": 2.0}) == ["resource_group_name", "subscription_id"]
    assert missing_required(template, {"resource_group_name": "rg", "subscription_id": "s"}) == []


# --------------------------------------------------------------------------- template validation


def test_undeclared_placeholder_is_rejected_by_name() -> None:
    template = _template({"image": "{{ image }}", "cpu": "{{cpu}}"}, image={"type": "string"})
    with pytest.raises(InvalidInput) as raised:
        validate_base_job_template(template)
    assert "'cpu'" in raised.value.message
    assert "'image'" not in raised.value.message
    assert "variables.properties" in raised.value.message


def test_malformed_variables_schema_is_rejected() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_base_job_template(_template({"cpu": "{{ cpu }}"}, cpu={"type": "int"}))
    assert "variables.properties.cpu.type" in raised.value.message


def test_dangling_ref_is_rejected() -> None:
    # Prefect's form: allOf/$ref into "definitions", where a typo'd name would only fail at run
    # time otherwise.
    template = _template(
        {"creds": "{{ creds }}"}, creds={"allOf": [{"$ref": "#/definitions/Missing"}]}
    )
    template["variables"]["definitions"] = {"AwsCredentials": {"type": "object"}}
    with pytest.raises(InvalidInput) as raised:
        validate_base_job_template(template)
    assert "#/definitions/Missing" in raised.value.message


def test_invalid_default_is_rejected() -> None:
    template = _template({"cpu": "{{ cpu }}"}, cpu={"type": "integer", "default": "lots"})
    with pytest.raises(InvalidInput) as raised:
        validate_base_job_template(template)
    assert "'cpu'" in raised.value.message
    assert "expected integer, got 'lots'" in raised.value.message


@pytest.mark.parametrize(
    "template",
    [None, [], "job_configuration", {"variables": {}}, {"job_configuration": {}, "variables": 1}],
)
def test_non_template_is_rejected(template: Any) -> None:
    with pytest.raises(InvalidInput):
        validate_base_job_template(template)


@pytest.mark.parametrize("name", PREFECT_NAMES)
def test_prefect_reference_templates_validate(name: str) -> None:
    template = _prefect(name)
    assert validate_base_job_template(template) is template
    rendered = render_job_configuration(template, {})
    assert set(rendered) == set(template["job_configuration"])


# --------------------------------------------------------------------------- credentials blocks


def test_block_variable_in_our_form_is_resolved() -> None:
    template = _template(
        {"creds": "{{ credentials }}", "region": "{{ region }}"},
        credentials={"type": "string", "block_type": "aws-credentials"},
        region={"type": "string"},
    )
    validate_base_job_template(template)
    calls: list[tuple[str, str]] = []

    def resolve(slug: str, name: str) -> dict[str, Any]:
        calls.append((slug, name))
        return {"aws_access_key_id": "AKIA"}

    rendered = render_job_configuration(
        template, {"credentials": "prod", "region": "eu"}, resolve, credential_slots=("creds",)
    )

    assert block_type_of(template, "credentials") == "aws-credentials"
    assert block_type_of(template, "region") is None
    assert calls == [("aws-credentials", "prod")]
    assert rendered == {"creds": {"aws_access_key_id": "AKIA"}, "region": "eu"}
    # Without a resolver the block's name stays.
    assert render_job_configuration(template, {"credentials": "prod"})["creds"] == "prod"


def test_prefect_ecs_aws_credentials_is_a_block_variable() -> None:
    template = _prefect("ecs")
    ref = template["variables"]["properties"]["aws_credentials"]["allOf"][0]["$ref"]
    definition = template["variables"]["definitions"][ref.rsplit("/", 1)[1]]
    assert definition["block_type_slug"] == "aws-credentials"

    assert block_type_of(template, "aws_credentials") == "aws-credentials"
    assert block_type_of(template, "cpu") is None

    # The block's name is accepted; its object schema is not applied to the name.
    validate_job_variables(template, {"aws_credentials": "prod"})
    with pytest.raises(InvalidInput) as raised:
        validate_job_variables(template, {"aws_credentials": ""})
    assert "'aws_credentials'" in raised.value.message
    assert "'aws-credentials' block" in raised.value.message

    rendered = render_job_configuration(
        template,
        {"aws_credentials": "prod"},
        lambda slug, name: {"slug": slug, "name": name},
        credential_slots=("aws_credentials",),
    )
    assert rendered["aws_credentials"] == {"slug": "aws-credentials", "name": "prod"}


def test_default_values_lists_only_declared_defaults() -> None:
    assert default_values(_process()) == {"env": {}, "labels": {}, "stream_output": True}
