"""Credentials blocks resolve only into their pool type's credential slots (issue: security).

Attack: a template that puts `{{ creds }}` (a credentials block) into `env` or `command` used to
render the decrypted block into the job, where the run printed it and its crash tail copied it
into `state_message`. Such templates are now refused when the pool is created or updated, and a
pool stored before that rule crashes its runs without resolving the block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from push_pools import templates
from push_pools.errors import InvalidInput
from push_pools.executors.ecs import template as ecs_template
from push_pools.executors.managed.template import default_template as managed_default
from push_pools.store.tables import WorkPool
from tests.conftest import deploy, wait_for_state

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
FIXTURES = Path(__file__).parent / "fixtures" / "prefect_templates"

pytestmark = pytest.mark.store


def _with_block_variable(template: dict[str, Any]) -> dict[str, Any]:
    template["variables"]["properties"]["creds"] = {
        "type": "string",
        "block_type": "aws-credentials",
        "default": "prod-aws",
    }
    return template


def _leaky_managed_template() -> dict[str, Any]:
    template = _with_block_variable(managed_default())
    template["job_configuration"]["env"] = {"LEAK": "{{ creds }}"}
    return template


@pytest.fixture
def stored_secret(client: Any) -> None:
    client.create_block(
        {
            "name": "prod-aws",
            "block_type": "aws-credentials",
            "data": {"aws_access_key_id": "AKIAPUSHPOOLSLEAK000", "aws_secret_access_key": SECRET},
        }
    )


def test_a_block_in_env_is_refused_at_create_naming_the_field(client: Any, cli: Any) -> None:
    with pytest.raises(InvalidInput) as exc:
        client.create_work_pool(
            {"name": "leaky", "type": "managed", "base_job_template": _leaky_managed_template()}
        )
    assert "job_configuration.env.LEAK" in exc.value.message
    assert "'managed' pool takes no credentials blocks" in exc.value.message
    assert "leaky" not in cli("work-pool", "ls").stdout


def test_the_cli_refuses_a_block_in_an_ecs_command(client: Any, cli: Any, tmp_path: Path) -> None:
    template = _with_block_variable(ecs_template.default_template())
    template["job_configuration"]["command"] = "python -c 'print(1)' {{ creds }}"
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    result = cli("work-pool", "create", "ecs", "-t", "ecs:push", "--base-job-template", str(path))
    assert result.exit_code == 1
    assert "job_configuration.command uses '{{ creds }}'" in result.stderr
    assert "job_configuration.aws_credentials" in result.stderr  # where a block may go
    assert "Traceback" not in result.stderr
    assert cli("work-pool", "ls", "--json").json() == []


def test_an_update_that_moves_a_block_into_env_changes_nothing(client: Any, cli: Any) -> None:
    client.create_work_pool({"name": "ecs", "type": "ecs:push"})
    before = client.get_work_pool("ecs")["base_job_template"]
    template = _with_block_variable(ecs_template.default_template())
    template["job_configuration"]["env"] = {"AWS": "{{ aws_credentials }}"}
    with pytest.raises(InvalidInput) as exc:
        client.update_work_pool("ecs", {"base_job_template": template})
    assert "job_configuration.env.AWS uses '{{ aws_credentials }}'" in exc.value.message
    assert client.get_work_pool("ecs")["base_job_template"] == before


def test_a_block_inside_a_longer_slot_string_is_refused() -> None:
    template = ecs_template.default_template()
    template["job_configuration"]["aws_credentials"] = "x-{{ aws_credentials }}"
    with pytest.raises(InvalidInput, match=r"job_configuration\.aws_credentials uses"):
        templates.check_credential_slots(template, ("aws_credentials",), "ecs:push")


def test_prefects_ecs_template_loads_on_an_ecs_pool(client: Any) -> None:
    template = json.loads((FIXTURES / "ecs.json").read_text())
    client.create_work_pool(
        {"name": "from-prefect", "type": "ecs:push", "base_job_template": template}
    )
    stored = client.get_work_pool("from-prefect")["base_job_template"]
    assert stored["job_configuration"]["aws_credentials"] == "{{ aws_credentials }}"


def test_only_the_slot_is_resolved() -> None:
    template = _with_block_variable(ecs_template.default_template())
    values = {"aws_credentials": "prod-aws"}
    resolved: list[tuple[str, str]] = []

    def resolve(slug: str, name: str) -> dict[str, Any]:
        resolved.append((slug, name))
        return {"aws_secret_access_key": SECRET}

    config = templates.render_job_configuration(
        template, values, resolve, credential_slots=("aws_credentials",), pool_type="ecs:push"
    )
    assert config["aws_credentials"] == {"aws_secret_access_key": SECRET}
    # "creds" is declared but fills no slot: never decrypted.
    assert resolved == [("aws-credentials", "prod-aws")]
    rest = {key: value for key, value in config.items() if key != "aws_credentials"}
    assert SECRET not in json.dumps(rest)


def test_a_pool_stored_before_the_rule_crashes_its_runs_without_the_secret(
    client: Any, server: Any, flow_dir: Path, stored_secret: None, cli: Any
) -> None:
    client.create_work_pool({"name": "old", "type": "managed"})
    # Written straight to the store, as an older version would have accepted it.
    with server.store.session() as session:
        session.execute(
            update(WorkPool)
            .where(WorkPool.name == "old")
            .values(base_job_template=_leaky_managed_template())
        )
    deployment = deploy(client, flow_dir, "show_env", pool="old", parameters={"key": "LEAK"})
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=30)
    assert final["state"] == "CRASHED"
    assert "job_configuration.env.LEAK" in final["state_message"]
    shown = cli("flow-run", "inspect", run["id"], "--json").stdout
    shown += cli("flow-run", "logs", run["id"]).stdout
    assert SECRET not in shown and "AKIAPUSHPOOLSLEAK000" not in shown


LEAKER = """
import os
from push_pools import flow

@flow(log_prints=True)
def leak(value: str) -> None:
    print("the value is", value, flush=True)
    print("my token is", os.environ.get("PUSH_POOLS_API_KEY"), flush=True)
    os._exit(3)
"""


def test_a_secret_that_reaches_the_output_anyway_is_stored_masked(
    client: Any, readable_dir: Path, stored_secret: None, cli: Any
) -> None:
    project = readable_dir / "leaker"
    project.mkdir()
    (project / "flows.py").write_text(LEAKER)
    client.create_work_pool({"name": "managed", "type": "managed"})
    # The secret reaches the flow by a way no template check can see: a parameter.
    deployment = deploy(client, project, "leak", pool="managed", parameters={"value": SECRET})
    run = client.create_run(deployment["id"], {})
    final = wait_for_state(client, run["id"], timeout=30)
    assert final["state"] == "CRASHED"
    # The dispatcher's crash tail (os._exit leaves the log shipper no time to send more).
    assert "the value is ********" in final["state_message"]
    assert "my token is ********" in final["state_message"]
    logs = cli("flow-run", "logs", run["id"]).stdout
    assert "the value is ********" in logs
    # (Its parameters still show the value: the user passed it there in clear.)
    for text in (logs, final["state_message"]):
        assert SECRET not in text and "pprun_" not in text
