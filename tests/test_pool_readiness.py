"""A push pool is READY only when a job can be made from its template; otherwise NOT_READY with
the reason, and deploying to it warns unless the deployment supplies what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from push_pools.client import Client

pytestmark = pytest.mark.store


@pytest.fixture
def no_cloud_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing on this machine names an AWS region or a Google project."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))


def with_default(template: dict, variable: str, value: str) -> dict:  # type: ignore[type-arg]
    template["variables"]["properties"][variable]["default"] = value
    return template


ROLE = "arn:aws:iam::123456789012:role/push-pools-execution"


@pytest.mark.parametrize(
    ("pool_type", "variable", "value", "words", "also"),
    [
        ("ecs:push", "region", "eu-west-1", "no AWS region", {"execution_role_arn": ROLE}),
        ("cloud-run:push", "project", "my-project", "no Google Cloud project", {}),
    ],
)
def test_a_push_pool_that_cannot_make_a_job_is_not_ready_until_it_can(
    no_cloud_defaults: None,
    client: Client,
    cli,  # noqa: ANN001
    pool_type: str,
    variable: str,
    value: str,
    words: str,
    also: dict[str, str],
) -> None:
    from push_pools import pool_types

    # Everything else the type needs is there: the pool lacks only `variable`.
    template = pool_types.get(pool_type).default_template()
    for name, other in also.items():
        template = with_default(template, name, other)
    client.create_work_pool({"name": "cloud", "type": pool_type, "base_job_template": template})
    pool = client.get_work_pool("cloud")
    assert pool["status"] == "NOT_READY"
    assert words in pool["status_reason"] and f"'{variable}'" in pool["status_reason"]
    shown = cli("work-pool", "inspect", "cloud")
    assert "NOT_READY" in shown.stdout and words in shown.stdout
    assert cli("work-pool", "ls", "--json").json()[0]["status"] == "NOT_READY"

    template = with_default(pool["base_job_template"], variable, value)
    client.update_work_pool("cloud", {"base_job_template": template})
    ready = client.get_work_pool("cloud")
    assert (ready["status"], ready["status_reason"]) == ("READY", None)


def test_deploying_to_a_pool_that_cannot_run_it_warns_unless_the_deployment_fills_the_gap(
    no_cloud_defaults: None,
    client: Client,
    cli,  # noqa: ANN001
    flow_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client.create_work_pool({"name": "ecs", "type": "ecs:push"})
    monkeypatch.chdir(flow_dir)
    bare = cli("deploy", "flows.py:greet", "-n", "bare", "-p", "ecs", "--no-prompt")
    assert bare.exit_code == 0, bare.stderr
    assert "Warning: its runs cannot start yet:" in bare.stdout
    deployment = client.get_deployment_by_name("greet/bare")
    assert deployment["status"] == "NOT_READY" and deployment["status_reason"]

    args = ("flows.py:greet", "-n", "regional", "-p", "ecs", "--no-prompt")
    role = "arn:aws:iam::123456789012:role/push-pools-execution"
    regional = cli(
        "deploy", *args, "--job-variable", "region=eu-west-1",
        "--job-variable", f"execution_role_arn={role}",
    )  # fmt: skip
    assert regional.exit_code == 0, regional.stderr
    assert "Warning" not in regional.stdout
    assert client.get_deployment_by_name("greet/regional")["status"] == "READY"


def test_worker_pools_keep_their_polling_status(client: Client) -> None:
    client.create_work_pool({"name": "local", "type": "process"})
    pool = client.get_work_pool("local")
    assert (pool["status"], pool["status_reason"]) == ("NOT_READY", None)  # no worker yet
