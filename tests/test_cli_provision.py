"""`--provision-infra` through the CLI: moto's server plays AWS, the embedded server plays us."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.moto_server import MotoServer, aws_test_env

pytestmark = pytest.mark.store

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    aws_test_env(monkeypatch, tmp_path, REGION)
    moto.reset()
    moto.add_aws_managed_policies("AmazonECSTaskExecutionRolePolicy")
    return moto


def provision_args(aws: MotoServer, *extra: str) -> list[str]:
    return ["--region", REGION, "--endpoint-url", aws.endpoint, *extra]


def create_provisioned(cli: Any, aws: MotoServer, *flags: str, name: str = "ecs-pool") -> Any:
    """`work-pool create NAME --type ecs:push --provision-infra FLAGS`, against moto."""
    return cli(
        "work-pool", "create", name, "--type", "ecs:push", "--provision-infra", *flags,
        *provision_args(aws),
    )  # fmt: skip


def tagged_resources(aws: MotoServer) -> list[str]:
    """Live resources carrying our ownership tag (a deleted ECS cluster lingers INACTIVE)."""
    import boto3

    tagging = boto3.client(
        "resourcegroupstaggingapi", region_name=REGION, endpoint_url=aws.endpoint
    )
    found = tagging.get_resources(TagFilters=[{"Key": "push-pools:pool"}])
    arns = [r["ResourceARN"] for r in found["ResourceTagMappingList"]]
    clusters = [a for a in arns if ":cluster/" in a]
    if clusters:
        ecs = boto3.client("ecs", region_name=REGION, endpoint_url=aws.endpoint)
        described = ecs.describe_clusters(clusters=clusters)["clusters"]
        inactive = {c["clusterArn"] for c in described if c["status"] == "INACTIVE"}
        arns = [a for a in arns if a not in inactive]
    return arns


def iam_users(aws: MotoServer) -> list[str]:
    import boto3

    iam = boto3.client("iam", region_name=REGION, endpoint_url=aws.endpoint)
    return [u["UserName"] for u in iam.list_users()["Users"]]


def test_dry_run_json_changes_nothing(server, cli, aws) -> None:
    result = create_provisioned(cli, aws, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = result.json()
    assert plan["account"] == "123456789012" and plan["region"] == REGION
    assert plan["steps"] and all(
        s["status"] in ("will be created", "exists") for s in plan["steps"]
    )
    assert any(s["status"] == "will be created" for s in plan["steps"])
    assert cli("work-pool", "ls", "--json").json() == []
    assert iam_users(aws) == []


def test_non_interactive_without_yes_refuses(server, cli, aws) -> None:
    result = create_provisioned(cli, aws)
    assert result.exit_code != 0 and "--yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("work-pool", "ls", "--json").json() == []
    assert iam_users(aws) == []


def test_provision_create_pool_then_deprovision(server, cli, client, aws) -> None:
    result = create_provisioned(cli, aws, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    pool = result.json()
    defaults = {
        k: v.get("default") for k, v in pool["base_job_template"]["variables"]["properties"].items()
    }
    assert defaults["cluster"].startswith("arn:aws:ecs:")
    assert defaults["execution_role_arn"].startswith("arn:aws:iam::")
    assert defaults["network_configuration"]["securityGroups"]
    assert defaults["aws_credentials"] == "ecs-pool-aws-credentials"
    # The credentials block exists, its secret masked.
    block = cli("block", "inspect", "ecs-pool-aws-credentials", "--json").json()
    assert block["data"]["aws_secret_access_key"] == "********"
    assert tagged_resources(aws)
    records = client.list_infrastructure("ecs-pool")
    assert records
    # Each record says by whom: the caller STS named at the preflight.
    import boto3

    sts = boto3.client("sts", region_name=REGION, endpoint_url=aws.endpoint)
    caller = sts.get_caller_identity()["Arn"]
    assert {r["data"]["provisioned_by"] for r in records} == {caller}

    again = cli(
        "work-pool", "provision-infra", "ecs-pool", "--dry-run", "--json", *provision_args(aws)
    )
    assert {s["status"] for s in again.json()["steps"]} == {"exists"}

    removed = cli("work-pool", "delete", "ecs-pool", "--yes", "--deprovision-infra")
    assert removed.exit_code == 0, removed.stderr
    assert tagged_resources(aws) == []
    assert iam_users(aws) == []
    assert cli("block", "inspect", "ecs-pool-aws-credentials").exit_code != 0
    assert cli("work-pool", "ls", "--json").json() == []


def test_type_without_provisioner_and_invalid_pool_name(server, cli, aws) -> None:
    result = cli("work-pool", "create", "p", "--type", "process", "--provision-infra", "--yes")
    assert result.exit_code != 0 and "ecs:push" in result.stderr
    bad = create_provisioned(cli, aws, "--yes", name="bad_name!")
    assert bad.exit_code != 0 and "Traceback" not in bad.stderr
    assert cli("work-pool", "ls", "--json").json() == []


def test_resource_name_overrides(server, cli, aws) -> None:
    result = create_provisioned(
        cli, aws, "--dry-run", "--json", "--resource-name", "cluster=shared-flows"
    )
    assert result.exit_code == 0, result.stderr
    titles = " ".join(s["title"] for s in result.json()["steps"])
    assert "shared-flows" in titles
    bad = create_provisioned(cli, aws, "--dry-run", "--resource-name", "clusterr=x")
    assert bad.exit_code != 0 and "cluster" in bad.stderr and "Traceback" not in bad.stderr


def test_bundles_of_a_provisioned_pool_go_to_the_bucket_it_created(
    server, cli, client, aws, monkeypatch: pytest.MonkeyPatch, readable_dir: Path
) -> None:
    import boto3

    from push_pools.deploy.entrypoints import load_flow
    from tests.bundle_helpers import where_project

    # The server writes bundles with its own credentials' chain: here, moto's.
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    result = create_provisioned(cli, aws, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    storage = result.json()["base_job_template"]["variables"]["properties"]["bundle_storage"]
    bucket = storage["default"].removeprefix("s3://").removesuffix("/bundles")
    assert storage["default"] == f"s3://{bucket}/bundles"

    project = where_project(readable_dir, "in the provisioned bucket")
    flow = load_flow("flows.py:where", project)
    deployment = flow.deploy("bucketed", "ecs-pool", source_dir=project, client=client, quiet=True)
    ((_, options),) = deployment.pull_steps[0].items()
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=aws.endpoint)
    stored = s3.get_object(Bucket=bucket, Key=f"bundles/{options['sha256']}.tar.gz")
    assert stored["Body"].read() == client.download_bundle(options["sha256"])

    # A second provisioning makes no second bucket.
    again = cli("work-pool", "provision-infra", "ecs-pool", "--yes", *provision_args(aws))
    assert again.exit_code == 0, again.stderr
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]

    removed = cli("work-pool", "deprovision-infra", "ecs-pool", "--yes")
    assert removed.exit_code == 0, removed.stderr
    assert s3.list_buckets()["Buckets"] == []
    assert tagged_resources(aws) == []
