"""The AWS provisioner against moto's server: real boto3 clients over HTTP, nothing patched.

Each test gets an empty moto account (us-east-1 unless it says otherwise), fake credentials in
the environment, and an in-memory credentials-block store standing in for the CLI's.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.exceptions import ClientError
from emulators.moto_server import MotoServer, aws_test_env

from provisioners.aws import (
    MANAGED_BY,
    MANAGED_BY_TAG,
    POOL_TAG,
    AwsNames,
    AwsProvisionConfig,
    aws_session,
    aws_steps,
    build_aws_plan,
    preflight,
    template_defaults,
)
from provisioners.aws.errors import translate_errors
from provisioners.aws.s3 import default_bucket_name
from provisioners.plan import (
    MemoryRecorder,
    Plan,
    ProvisioningError,
    ResourceRecord,
    StepCheck,
    StepStatus,
)
from push_pools.errors import InvalidInput
from push_pools.executors.ecs.job import EcsJob

POOL = "pool-a"
ACCOUNT = "123456789012"
# The brief's list, plus the other verbs that change state (Revoke, Detach, Replace, ...).
MUTATING = (
    "Create",
    "Put",
    "Attach",
    "Tag",
    "Untag",
    "Update",
    "Delete",
    "Run",
    "Register",
    "Deregister",
    "Authorize",
    "Revoke",
    "Associate",
    "Disassociate",
    "Modify",
    "Detach",
    "Replace",
    "Remove",
    "Set",
    "Enable",
    "Disable",
)
ALL_STEPS = [s.id for s in aws_steps(AwsProvisionConfig(POOL, create_task_role=True))[0]]
NETWORK_STEPS = [s for s in ALL_STEPS if s.startswith("network-")]
# With a default VPC these steps adopt (no create to fail); the new-VPC test covers them. The
# account step creates nothing.
ADOPTED_WITH_DEFAULT_VPC = {
    "aws-account",
    "network-vpc",
    "network-internet-gateway",
    "network-subnets",
    "network-route-table",
}
NETWORK_KINDS = ("vpc", "internet_gateway", "subnet", "route_table", "security_group")


class Blocks:
    """The CLI's credentials-block callbacks, kept in memory; secrets are only counted."""

    def __init__(self) -> None:
        self.saved: dict[str, tuple[str, str]] = {}  # name -> (access key id, region)
        self.calls: list[str] = []

    def save(self, name: str, access_key_id: str, secret_access_key: str, region: str) -> None:
        assert secret_access_key  # the secret reached the block, and only the block
        self.calls.append(access_key_id)
        self.saved[name] = (access_key_id, region)

    def exists(self, name: str) -> bool:
        return name in self.saved


class Aws:
    """One test's view of the emulated account."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint = endpoint
        self.region = region
        self.blocks = Blocks()
        self.recorder = MemoryRecorder()
        self.mutations: list[str] = []

    def client(self, service: str) -> Any:
        """A client for changes "out of band", with its own keys (tests may remove the env's)."""
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )
        return session.client(service, endpoint_url=self.endpoint)

    def config(self, **overrides: Any) -> AwsProvisionConfig:
        values: dict[str, Any] = {
            "pool_name": POOL,
            "region": self.region,
            "endpoint_url": self.endpoint,
            "create_task_role": True,
        }
        values.update(overrides)
        return AwsProvisionConfig(**values)

    def plan(self, config: AwsProvisionConfig | None = None) -> Plan:
        """A fresh Plan (as a new CLI run makes one) whose AWS calls are counted."""
        config = config or self.config()
        session = aws_session(config)
        self.mutations.clear()

        def count(model: Any, **_: Any) -> None:
            if model.name.startswith(MUTATING):
                self.mutations.append(model.name)

        # Registered on the session before the plan makes its clients, so every client has it.
        session.events.register("before-call", count)
        return build_aws_plan(
            config,
            self.recorder,
            save_credentials=self.blocks.save,
            credentials_exist=self.blocks.exists,
            session=session,
        )

    def apply(self, config: AwsProvisionConfig | None = None) -> dict[str, ResourceRecord]:
        return self.plan(config).apply()

    # --- what exists ----------------------------------------------------------------------

    def ours(self) -> dict[str, list[str]]:
        """Every resource in the account carrying our pool tag, by kind."""
        iam, ecs = self.client("iam"), self.client("ecs")
        logs, ecr, ec2 = self.client("logs"), self.client("ecr"), self.client("ec2")
        s3 = self.client("s3")
        found: dict[str, list[str]] = {}

        def add(kind: str, ident: str, tags: Any) -> None:
            flat = tags if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags}
            if flat.get(POOL_TAG) == POOL:
                assert flat.get(MANAGED_BY_TAG) == MANAGED_BY
                found.setdefault(kind, []).append(ident)

        for user in iam.list_users()["Users"]:
            add("user", user["UserName"], iam.list_user_tags(UserName=user["UserName"])["Tags"])
        for role in iam.list_roles()["Roles"]:
            add("role", role["RoleName"], iam.list_role_tags(RoleName=role["RoleName"])["Tags"])
        for policy in iam.list_policies(Scope="Local")["Policies"]:
            tags = iam.list_policy_tags(PolicyArn=policy["Arn"])["Tags"]
            add("policy", policy["PolicyName"], tags)
        arns = ecs.list_clusters()["clusterArns"]
        for cluster in ecs.describe_clusters(clusters=arns, include=["TAGS"])["clusters"]:
            if cluster["status"] == "ACTIVE":
                tags = {t["key"]: t["value"] for t in cluster.get("tags", [])}
                add("cluster", cluster["clusterName"], tags)
        for group in logs.describe_log_groups()["logGroups"]:
            tags = logs.list_tags_for_resource(resourceArn=group["logGroupArn"])["tags"]
            add("log_group", group["logGroupName"], tags)
        for repo in ecr.describe_repositories()["repositories"]:
            tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
            add("repository", repo["repositoryName"], tags)
        for bucket in s3.list_buckets()["Buckets"]:
            try:
                tags = s3.get_bucket_tagging(Bucket=bucket["Name"])["TagSet"]
            except ClientError:
                tags = []  # an untagged bucket
            add("bucket", bucket["Name"], tags)
        for vpc in ec2.describe_vpcs()["Vpcs"]:
            add("vpc", vpc["VpcId"], vpc.get("Tags", []))
        for subnet in ec2.describe_subnets()["Subnets"]:
            add("subnet", subnet["SubnetId"], subnet.get("Tags", []))
        for igw in ec2.describe_internet_gateways()["InternetGateways"]:
            add("internet_gateway", igw["InternetGatewayId"], igw.get("Tags", []))
        for table in ec2.describe_route_tables()["RouteTables"]:
            add("route_table", table["RouteTableId"], table.get("Tags", []))
        for group in ec2.describe_security_groups()["SecurityGroups"]:
            add("security_group", group["GroupId"], group.get("Tags", []))
        return found

    def access_keys(self, user: str = f"push-pools-{POOL}") -> list[str]:
        keys = self.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
        return [k["AccessKeyId"] for k in keys]

    def iam_entities(self) -> list[str]:
        """IAM users, roles and customer policies whose names are ours, tagged or not."""
        iam = self.client("iam")
        names = [u["UserName"] for u in iam.list_users()["Users"]]
        names += [r["RoleName"] for r in iam.list_roles()["Roles"]]
        names += [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]
        return [n for n in names if n.startswith("push-pools-")]

    def default_vpc(self) -> str | None:
        vpcs = self.client("ec2").describe_vpcs(
            Filters=[{"Name": "is-default", "Values": ["true"]}]
        )["Vpcs"]
        return vpcs[0]["VpcId"] if vpcs else None

    def delete_default_vpc(self) -> None:
        ec2 = self.client("ec2")
        vpc_id = self.default_vpc()
        assert vpc_id is not None
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
            "Subnets"
        ]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        ec2.delete_vpc(VpcId=vpc_id)

    def policy_document(self) -> dict[str, Any]:
        iam = self.client("iam")
        arn = f"arn:aws:iam::{ACCOUNT}:policy/push-pools-{POOL}-control-plane"
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
        return dict(document["Document"])


EXPECTED_KINDS = {
    "user": [f"push-pools-{POOL}"],
    "role": sorted([f"push-pools-{POOL}-execution", f"push-pools-{POOL}-task"]),
    "policy": [f"push-pools-{POOL}-control-plane"],
    "cluster": [f"push-pools-{POOL}"],
    "log_group": [f"/push-pools/{POOL}"],
    "repository": [f"push-pools-{POOL}"],
    "bucket": [default_bucket_name(POOL, ACCOUNT, "us-east-1")],
}


def kinds(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in found.items() if k in EXPECTED_KINDS}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def make_aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, region: str) -> Aws:
    aws_test_env(monkeypatch, tmp_path, region)
    moto.reset()
    moto.add_aws_managed_policies("AmazonECSTaskExecutionRolePolicy")
    return Aws(moto.endpoint, region)


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Aws:
    return make_aws(moto, monkeypatch, tmp_path, "us-east-1")


# --- provisioning ---------------------------------------------------------------------------


def test_provision_empty_account_creates_every_resource_tagged_and_scoped(aws: Aws) -> None:
    default_vpc = aws.default_vpc()
    outputs = aws.apply()

    assert list(outputs) == ALL_STEPS
    found = aws.ours()
    assert kinds(found) == EXPECTED_KINDS
    assert len(found["security_group"]) == 1
    # The default VPC is adopted, not ours: no VPC, subnet, gateway or route table was made.
    assert not {"vpc", "subnet", "internet_gateway", "route_table"} & set(found)
    assert outputs["network-vpc"].created is False
    assert outputs["network-vpc"].data["vpc_id"] == default_vpc
    assert outputs["network-subnets"].created is False
    for step in ("logs-group", "ecr-repository", "ecs-cluster", "iam-user", "iam-user-policy"):
        assert outputs[step].created is True
        assert outputs[step].identifier.startswith("arn:aws:")

    # The execution role: ECS may assume it, it has the managed policy and writes our logs.
    iam = aws.client("iam")
    role = iam.get_role(RoleName=f"push-pools-{POOL}-execution")["Role"]
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    attached = iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonECSTaskExecutionRolePolicy"]
    inline = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="push-pools-logs")
    log_group_arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/push-pools/{POOL}"
    assert inline["PolicyDocument"]["Statement"][0]["Resource"] == [f"{log_group_arn}:*"]

    # The log group keeps logs for the configured time; the user has our policy attached.
    group = aws.client("logs").describe_log_groups(logGroupNamePrefix="/push-pools/")
    assert group["logGroups"][0]["retentionInDays"] == 30
    user_policies = iam.list_attached_user_policies(UserName=f"push-pools-{POOL}")
    assert [p["PolicyName"] for p in user_policies["AttachedPolicies"]] == [
        f"push-pools-{POOL}-control-plane"
    ]

    # The security group: egress only.
    sg_id = outputs["network-security-group"].data["group_id"]
    sg = aws.client("ec2").describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
    assert sg["IpPermissions"] == []
    assert sg["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    assert sg["VpcId"] == default_vpc


def test_control_plane_policy_is_scoped_to_our_resources(aws: Aws) -> None:
    aws.apply()
    statements = {s["Sid"]: s for s in aws.policy_document()["Statement"]}
    prefix = f"arn:aws:ecs:us-east-1:{ACCOUNT}"
    cluster_arn = f"{prefix}:cluster/push-pools-{POOL}"
    roles = sorted(
        f"arn:aws:iam::{ACCOUNT}:role/push-pools-{POOL}-{kind}" for kind in ("execution", "task")
    )

    assert statements["PassTaskRoles"]["Action"] == ["iam:PassRole"]
    assert statements["PassTaskRoles"]["Resource"] == roles
    assert statements["PassTaskRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert statements["RunTasksOnPoolCluster"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": cluster_arn}
    }
    assert statements["ListTasksOnPoolCluster"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": cluster_arn}
    }
    assert statements["WatchTasksOnPoolCluster"]["Resource"] == [
        f"{prefix}:task/push-pools-{POOL}/*"
    ]
    assert statements["DescribePoolCluster"]["Resource"] == [cluster_arn]
    log_group = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/push-pools/{POOL}"
    assert statements["ReadPoolLogs"]["Resource"] == [log_group, f"{log_group}:*"]
    assert statements["PushPullPoolRepository"]["Resource"] == [
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/push-pools-{POOL}"
    ]
    # Tags given at registration are authorized as ecs:TagResource (tag-on-create): granted for
    # RegisterTaskDefinition only, on the families the executor registers for this pool only.
    tag_definitions = statements["TagTaskDefinitionsAtRegistration"]
    assert tag_definitions["Action"] == ["ecs:TagResource"]
    assert tag_definitions["Condition"] == {
        "StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}
    }
    # Registering, too, only into this pool's families (another pool's runs start the newest
    # revision of theirs).
    register = statements["RegisterPoolTaskDefinitions"]
    assert register["Action"] == ["ecs:RegisterTaskDefinition"]
    ours = f"{prefix}:task-definition/{registered_family(POOL)}:1"
    for statement in (tag_definitions, register):
        assert iam_resource_matches(statement["Resource"], ours)
        for other_pool in ("pool-b", f"{POOL}-b", f"x-{POOL}"):
            theirs = f"{prefix}:task-definition/{registered_family(other_pool)}:1"
            assert not iam_resource_matches(statement["Resource"], theirs), other_pool
        assert not iam_resource_matches(statement["Resource"], f"{prefix}:task/x/1")
    assert not any(
        "ecs:RegisterTaskDefinition" in s["Action"] for s in statements.values() if s != register
    )

    # "*" only where AWS offers no resource-level permission, or a condition pins the cluster.
    unscoped = {sid for sid, s in statements.items() if s["Resource"] == "*"}
    assert unscoped == {"TaskDefinitions", "RegistryLogin", "ListTasksOnPoolCluster"}
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert not any(action.endswith(":*") for action in statement["Action"])
    passrole_anywhere = [
        sid
        for sid, s in statements.items()
        if "iam:PassRole" in s["Action"] and sid != "PassTaskRoles"
    ]
    assert passrole_anywhere == []


def registered_family(pool: str) -> str:
    """The task-definition family the ECS executor registers for a run of this pool."""
    job = EcsJob.from_configuration({"image": "flows:1", "launch_type": "EC2"})
    return str(
        job.task_definition(region="us-east-1", pool_name=pool, deployment_id=None)["family"]
    )


def iam_resource_matches(patterns: list[str], arn: str) -> bool:
    """IAM's Resource matching: `*` any run of characters, `?` any one, case-sensitive."""
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in patterns)


def test_template_defaults_point_at_what_was_provisioned(aws: Aws) -> None:
    config = aws.config()
    outputs = aws.apply(config)
    defaults = template_defaults(outputs, config)
    assert defaults["region"] == "us-east-1"
    assert defaults["cluster"] == f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/push-pools-{POOL}"
    assert defaults["execution_role_arn"].endswith(f":role/push-pools-{POOL}-execution")
    assert defaults["task_role_arn"].endswith(f":role/push-pools-{POOL}-task")
    assert defaults["cloudwatch_log_group"] == f"/push-pools/{POOL}"
    assert defaults["cloudwatch_logs_prefix"] == "push-pools"
    assert defaults["cloudwatch_create_log_group"] is False
    # No image default: bundle deploys get the stock image, image deploys the repository.
    assert "image" not in defaults
    assert defaults["aws_credentials"] == f"{POOL}-aws-credentials"
    network = defaults["network_configuration"]
    assert network["securityGroups"] == [outputs["network-security-group"].data["group_id"]]
    assert network["assignPublicIp"] == "ENABLED"
    subnets = aws.client("ec2").describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [aws.default_vpc()]}]
    )["Subnets"]
    assert sorted(network["subnets"]) == sorted(s["SubnetId"] for s in subnets)
    json.dumps(defaults)  # goes into the pool's template as is

    without_task_role = aws.config(create_task_role=False)
    assert "task_role_arn" not in template_defaults(outputs, without_task_role)


def test_provision_again_makes_no_mutating_call(aws: Aws) -> None:
    aws.apply()
    before = aws.ours()
    assert aws.mutations  # the counting hook sees the first run's creates

    plan = aws.plan()
    assert {p.status for p in plan.preview()} == {StepStatus.EXISTS}
    outputs = plan.apply()

    assert aws.mutations == []
    assert aws.ours() == before
    assert len(aws.blocks.calls) == 1
    assert set(outputs) == set(ALL_STEPS)


def test_preview_of_an_empty_account_changes_nothing(aws: Aws) -> None:
    planned = aws.plan().preview()
    assert aws.mutations == []
    assert aws.ours() == {}
    statuses = {p.step_id: p.status for p in planned}
    assert statuses["network-vpc"] == StepStatus.EXISTS  # the default VPC
    assert statuses["iam-user"] == StepStatus.CREATE
    assert statuses["iam-access-key"] == StepStatus.CREATE


@pytest.mark.parametrize("region, zones", [("us-east-1", 3), ("us-west-1", 2)])
def test_without_default_vpc_a_vpc_with_public_subnets_is_created(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, region: str, zones: int
) -> None:
    aws = make_aws(moto, monkeypatch, tmp_path, region)
    aws.delete_default_vpc()

    outputs = aws.apply()

    found = aws.ours()
    ec2 = aws.client("ec2")
    assert len(found["vpc"]) == 1
    vpc_id = found["vpc"][0]
    assert outputs["network-vpc"].created is True
    assert outputs["network-vpc"].data["vpc_id"] == vpc_id
    # Public subnets in `zones` distinct availability zones (us-west-1 only has two).
    subnets = ec2.describe_subnets(SubnetIds=found["subnet"])["Subnets"]
    assert len(subnets) == zones
    assert len({s["AvailabilityZone"] for s in subnets}) == zones
    assert all(s["VpcId"] == vpc_id and s["MapPublicIpOnLaunch"] for s in subnets)
    # An attached internet gateway, and a route table sending 0.0.0.0/0 to it for every subnet.
    igw = ec2.describe_internet_gateways(InternetGatewayIds=found["internet_gateway"])
    igw_id = igw["InternetGateways"][0]["InternetGatewayId"]
    assert [a["VpcId"] for a in igw["InternetGateways"][0]["Attachments"]] == [vpc_id]
    table = ec2.describe_route_tables(RouteTableIds=found["route_table"])["RouteTables"][0]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw_id}.items() <= next(
        r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"
    ).items()
    associated = {a["SubnetId"] for a in table["Associations"] if "SubnetId" in a}
    assert associated == set(found["subnet"])
    # The security group is in the new VPC and written into the network configuration.
    sg = ec2.describe_security_groups(GroupIds=found["security_group"])["SecurityGroups"][0]
    assert sg["VpcId"] == vpc_id
    defaults = template_defaults(outputs, aws.config())
    assert defaults["network_configuration"]["securityGroups"] == found["security_group"]
    assert sorted(defaults["network_configuration"]["subnets"]) == sorted(found["subnet"])

    # Again: nothing to do. Then teardown removes the whole network.
    aws.apply()
    assert aws.mutations == []
    aws.plan().teardown()
    assert aws.ours() == {}
    assert ec2.describe_vpcs()["Vpcs"] == []


# --- drift ----------------------------------------------------------------------------------


def test_drifted_policy_document_gets_a_new_default_version(aws: Aws) -> None:
    aws.apply()
    wanted = aws.policy_document()
    iam = aws.client("iam")
    arn = f"arn:aws:iam::{ACCOUNT}:policy/push-pools-{POOL}-control-plane"
    loose = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecs:*", "Resource": "*"}],
    }
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(loose), SetAsDefault=True)

    plan = aws.plan()
    planned = {p.step_id: p for p in plan.preview()}
    assert planned["iam-user-policy"].status == StepStatus.UPDATE
    assert "policy document" in planned["iam-user-policy"].detail
    plan.apply()

    assert aws.mutations == ["CreatePolicyVersion"]
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 3
    assert aws.policy_document() == wanted


def test_policy_drift_at_five_versions_prunes_the_oldest(aws: Aws) -> None:
    aws.apply()
    iam = aws.client("iam")
    arn = f"arn:aws:iam::{ACCOUNT}:policy/push-pools-{POOL}-control-plane"
    for n in range(4):  # v2..v5: IAM's limit is five versions
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": f"s3:Get{n}", "Resource": "*"}],
        }
        iam.create_policy_version(
            PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True
        )

    aws.apply()

    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5
    assert "v1" not in {v["VersionId"] for v in versions}
    assert aws.mutations == ["DeletePolicyVersion", "CreatePolicyVersion"]


def test_other_drift_is_converged(aws: Aws) -> None:
    outputs = aws.apply()
    iam, logs, ec2 = aws.client("iam"), aws.client("logs"), aws.client("ec2")
    role = f"push-pools-{POOL}-execution"
    iam.delete_role_policy(RoleName=role, PolicyName="push-pools-logs")
    iam.detach_role_policy(
        RoleName=role,
        PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    )
    logs.put_retention_policy(logGroupName=f"/push-pools/{POOL}", retentionInDays=7)
    sg_id = outputs["network-security-group"].data["group_id"]
    ec2.authorize_security_group_ingress(
        GroupId=sg_id, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0"
    )

    plan = aws.plan()
    updates = {p.step_id for p in plan.preview() if p.status == StepStatus.UPDATE}
    assert updates == {"iam-execution-role", "logs-group", "network-security-group"}
    plan.apply()

    assert sorted(aws.mutations) == sorted(
        ["AttachRolePolicy", "PutRolePolicy", "PutRetentionPolicy", "RevokeSecurityGroupIngress"]
    )
    group = logs.describe_log_groups(logGroupNamePrefix="/push-pools/")["logGroups"][0]
    assert group["retentionInDays"] == 30
    sg = ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
    assert sg["IpPermissions"] == []
    aws.apply()
    assert aws.mutations == []


# --- failures and resumption ----------------------------------------------------------------


@pytest.mark.parametrize("step", [s for s in ALL_STEPS if s not in ADOPTED_WITH_DEFAULT_VPC])
def test_failure_at_any_step_resumes_without_duplicates(aws: Aws, step: str) -> None:
    # The hook fails the step right after its cloud calls succeeded, before the Plan records it.
    with pytest.raises(ProvisioningError) as failed:
        aws.apply(aws.config(fail_at_step=step))
    assert failed.value.step_id == step
    assert failed.value.cloud == "aws"
    recorded = [r.step for r in aws.recorder.load()]
    assert recorded == ALL_STEPS[: ALL_STEPS.index(step)]
    # A teardown of the half-finished run removes it all, the unrecorded resource included;
    # then the CLI deletes the credentials block.
    aws.plan().teardown()
    aws.blocks.saved.clear()
    assert aws.ours() == {}
    assert aws.iam_entities() == []

    with pytest.raises(ProvisioningError):
        aws.apply(aws.config(fail_at_step=step))
    outputs = aws.apply()

    assert list(outputs) == ALL_STEPS
    if step == "iam-access-key":
        # The block was saved before the crash; which key it holds is unknowable, so it is
        # kept as found (adopted); the key goes when teardown deletes the user.
        assert outputs[step].created is False
    else:
        assert outputs[step].created is True  # found by name and tags: ours, teardown deletes it
    found = aws.ours()
    assert kinds(found) == EXPECTED_KINDS
    assert len(found["security_group"]) == 1
    assert len(aws.access_keys()) == 1
    assert len(aws.blocks.calls) == (2 if step == "iam-access-key" else 1)


@pytest.mark.parametrize("step", NETWORK_STEPS)
def test_failure_in_a_new_vpc_resumes_and_tears_down(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, step: str
) -> None:
    aws = make_aws(moto, monkeypatch, tmp_path, "us-east-1")
    aws.delete_default_vpc()
    with pytest.raises(ProvisioningError) as failed:
        aws.apply(aws.config(fail_at_step=step))
    assert failed.value.step_id == step
    # Teardown of the half-finished run removes all of it, the unrecorded resource too (the
    # teardown's last step sweeps what carries our tags).
    aws.plan().teardown()
    aws.blocks.saved.clear()
    assert aws.ours() == {}
    assert aws.iam_entities() == []

    with pytest.raises(ProvisioningError):
        aws.apply(aws.config(fail_at_step=step))
    aws.apply()

    found = aws.ours()
    assert kinds(found) == EXPECTED_KINDS
    counts = {kind: len(found[kind]) for kind in NETWORK_KINDS}
    assert counts == {
        "vpc": 1,
        "internet_gateway": 1,
        "subnet": 3,
        "route_table": 1,
        "security_group": 1,
    }
    assert len(aws.blocks.calls) == 1


def test_save_credentials_failure_leaves_no_key(aws: Aws) -> None:
    def broken(name: str, key: str, secret: str, region: str) -> None:
        raise RuntimeError("block store unavailable")

    plan = build_aws_plan(
        aws.config(),
        aws.recorder,
        save_credentials=broken,
        credentials_exist=aws.blocks.exists,
    )
    with pytest.raises(ProvisioningError) as failed:
        plan.apply()
    assert failed.value.step_id == "iam-access-key"
    assert aws.access_keys() == []


# --- teardown -------------------------------------------------------------------------------


def test_deprovision_removes_exactly_what_was_created(aws: Aws) -> None:
    default_vpc = aws.default_vpc()
    default_subnets = aws.client("ec2").describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [default_vpc]}]
    )["Subnets"]
    # Someone else's resources in the same account must survive.
    aws.client("iam").create_user(UserName="someone-else")
    aws.client("ecs").create_cluster(clusterName="their-cluster")
    aws.apply()

    removed = aws.plan().teardown()

    assert [r.step for r in removed] == list(reversed(ALL_STEPS))
    assert aws.ours() == {}
    assert aws.iam_entities() == []
    assert aws.recorder.load() == []
    assert aws.default_vpc() == default_vpc
    after = aws.client("ec2").describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [default_vpc]}]
    )["Subnets"]
    assert len(after) == len(default_subnets)
    assert [u["UserName"] for u in aws.client("iam").list_users()["Users"]] == ["someone-else"]
    ecs = aws.client("ecs")
    clusters = ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"]
    assert [c["clusterName"] for c in clusters if c["status"] == "ACTIVE"] == ["their-cluster"]
    # A second teardown has nothing left to do.
    assert aws.plan().teardown() == []


def test_records_of_another_account_are_refused(aws: Aws) -> None:
    aws.client("ecs").create_cluster(clusterName=f"push-pools-{POOL}")
    elsewhere = "999999999999"
    aws.recorder.save(
        ResourceRecord(
            "aws-account",
            "aws:account",
            f"arn:aws:iam::{elsewhere}:root",
            True,
            {"account_id": elsewhere, "region": "us-east-1"},
        )
    )
    aws.recorder.save(
        ResourceRecord(
            "ecs-cluster",
            "aws:ecs:cluster",
            f"arn:aws:ecs:us-east-1:{elsewhere}:cluster/push-pools-{POOL}",
            True,
            {"name": f"push-pools-{POOL}"},
        )
    )

    with pytest.raises(ProvisioningError, match=f"in account {elsewhere}"):
        aws.apply()
    with pytest.raises(ProvisioningError, match=f"in account {elsewhere}"):
        aws.plan().teardown()

    assert aws.mutations == []
    cluster = aws.client("ecs").describe_clusters(clusters=[f"push-pools-{POOL}"])["clusters"][0]
    assert cluster["status"] == "ACTIVE"


def test_teardown_deletes_a_task_role_a_later_run_no_longer_wants(aws: Aws) -> None:
    aws.apply()
    aws.apply(aws.config(create_task_role=False))
    aws.plan(aws.config(create_task_role=False)).teardown()
    assert aws.iam_entities() == []


def test_adopted_resources_are_kept(aws: Aws) -> None:
    aws.client("ecs").create_cluster(clusterName="shared")
    aws.apply(aws.config(names=AwsNames(cluster="shared")))
    aws.plan(aws.config(names=AwsNames(cluster="shared"))).teardown()
    assert aws.client("ecs").describe_clusters(clusters=["shared"])["clusters"][0]["status"] == (
        "ACTIVE"
    )


def test_a_foreign_user_of_our_name_is_not_reused(aws: Aws) -> None:
    aws.client("iam").create_user(UserName=f"push-pools-{POOL}")
    with pytest.raises(ProvisioningError) as failed:
        aws.apply()
    assert failed.value.step_id == "iam-user"
    assert "not created by push-pools" in failed.value.message
    assert aws.access_keys() == []


# --- credentials ----------------------------------------------------------------------------


def test_credentials_block_is_saved_once_and_never_a_second_key(aws: Aws) -> None:
    outputs = aws.apply()
    key_id = outputs["iam-access-key"].data["access_key_id"]
    assert aws.blocks.saved == {f"{POOL}-aws-credentials": (key_id, "us-east-1")}
    assert "SecretAccessKey" not in json.dumps([r.to_dict() for r in aws.recorder.load()])

    # The records are lost (a new server, say) but the block exists: still no second key.
    aws.recorder = MemoryRecorder()
    aws.apply()
    assert aws.access_keys() == [key_id]
    assert aws.blocks.calls == [key_id]


def test_a_block_left_from_an_earlier_teardown_is_replaced(aws: Aws) -> None:
    first = aws.apply()["iam-access-key"].data["access_key_id"]
    aws.plan().teardown()  # the block stays (the CLI did not delete it)

    second = aws.apply()["iam-access-key"].data["access_key_id"]

    assert aws.access_keys() == [second]
    assert aws.blocks.calls == [first, second]


def test_lost_block_replaces_our_key_and_keeps_foreign_ones(aws: Aws) -> None:
    old = aws.apply()["iam-access-key"].data["access_key_id"]
    foreign = aws.client("iam").create_access_key(UserName=f"push-pools-{POOL}")
    foreign_id = foreign["AccessKey"]["AccessKeyId"]
    aws.blocks.saved.clear()  # the block was deleted: our key's secret is lost

    new = aws.apply()["iam-access-key"].data["access_key_id"]

    assert new != old
    assert sorted(aws.access_keys()) == sorted([foreign_id, new])
    assert aws.blocks.calls == [old, new]


def test_two_foreign_keys_fail_clearly_and_delete_nothing(aws: Aws) -> None:
    with pytest.raises(ProvisioningError):
        aws.apply(aws.config(fail_at_step="iam-user-policy"))
    iam = aws.client("iam")
    user = f"push-pools-{POOL}"
    keys = [iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"] for _ in range(2)]

    with pytest.raises(ProvisioningError) as failed:
        aws.apply()

    assert failed.value.step_id == "iam-access-key"
    assert "already has 2 access keys" in failed.value.message
    assert all(key in failed.value.message for key in keys)
    assert sorted(aws.access_keys()) == sorted(keys)
    assert aws.blocks.calls == []


# --- pre-flight and input -------------------------------------------------------------------


def test_preflight_reports_the_account(aws: Aws) -> None:
    report = preflight(aws.config())
    assert report.account_id == ACCOUNT
    assert report.caller_arn.endswith(":user/moto")
    assert report.region == "us-east-1"
    # moto's caller is no IAM principal, so the simulator is not asked; the report says so.
    assert report.permissions_checked is False
    assert report.note.startswith("permissions not checked")
    assert report.ok
    assert aws.ours() == {}


def test_preflight_without_a_simulator_says_so(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    iam = aws.client("iam")
    iam.create_user(UserName="operator")
    key = iam.create_access_key(UserName="operator")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])

    report = preflight(aws.config())

    assert report.caller_arn == f"arn:aws:iam::{ACCOUNT}:user/operator"
    # moto 5.2.5 does not implement SimulatePrincipalPolicy (HTTP 500): unchecked, not failed.
    assert report.permissions_checked is False
    assert "does not implement the policy simulator" in report.note
    report.raise_for_missing()


class FakeSimulator(BaseHTTPRequestHandler):
    """STS, EC2 and IAM's query protocol for the three calls pre-flight makes, with a real
    policy simulator's answer (moto has none): every action allowed except DENIED."""

    DENIED = ("ecs:CreateCluster", "iam:CreateUser")

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        action = form["Action"]
        if action == "GetCallerIdentity":
            body = (
                '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/operator</Arn>"
                "<UserId>AIDAOPERATOR</UserId><Account>123456789012</Account>"
                "</GetCallerIdentityResult></GetCallerIdentityResponse>"
            )
        elif action == "DescribeVpcs":
            body = (
                '<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                "<vpcSet><item><vpcId>vpc-1</vpcId><isDefault>true</isDefault></item></vpcSet>"
                "</DescribeVpcsResponse>"
            )
        elif action == "SimulatePrincipalPolicy":
            assert form["PolicySourceArn"] == "arn:aws:iam::123456789012:user/operator"
            names = [v for k, v in sorted(form.items()) if k.startswith("ActionNames.member.")]
            members = "".join(
                f"<member><EvalActionName>{name}</EvalActionName><EvalResourceName>*"
                "</EvalResourceName><EvalDecision>"
                f"{'implicitDeny' if name in self.DENIED else 'allowed'}</EvalDecision></member>"
                for name in names
            )
            body = (
                '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/'
                '2010-05-08/"><SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>'
                f"<EvaluationResults>{members}</EvaluationResults>"
                "</SimulatePrincipalPolicyResult></SimulatePrincipalPolicyResponse>"
            )
        else:
            self.send_error(400, f"unexpected action {action}")
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


def test_preflight_lists_denied_permissions(aws: Aws) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSimulator)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        report = preflight(aws.config(endpoint_url=endpoint))
    finally:
        server.shutdown()
        server.server_close()

    assert report.account_id == ACCOUNT
    assert report.permissions_checked is True
    assert report.missing_permissions == FakeSimulator.DENIED
    assert not report.ok
    with pytest.raises(ProvisioningError) as error:
        report.raise_for_missing()
    assert "ecs:CreateCluster, iam:CreateUser" in error.value.message


def test_unknown_profile_is_invalid_input(aws: Aws) -> None:
    with pytest.raises(InvalidInput) as error:
        aws.plan(aws.config(profile="nope"))
    assert "AWS profile 'nope' not found" in error.value.message
    with pytest.raises(InvalidInput):
        preflight(aws.config(profile="nope"))
    assert aws.ours() == {}


def test_profile_from_config_file_is_used(aws: Aws, tmp_path: Path) -> None:
    (tmp_path / "aws-credentials").write_text(
        "[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    (tmp_path / "aws-config").write_text("[profile ops]\nregion = us-east-1\n")
    report = preflight(AwsProvisionConfig(POOL, profile="ops", endpoint_url=aws.endpoint))
    assert report.region == "us-east-1"


def test_missing_credentials_are_invalid_input(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(InvalidInput) as error:
        build_aws_plan(
            aws.config(),
            aws.recorder,
            save_credentials=aws.blocks.save,
            credentials_exist=aws.blocks.exists,
        )
    assert error.value.message == (
        "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "or pass --profile"
    )
    assert aws.ours() == {}


@pytest.mark.parametrize("region", ["us-east-9", "mars-west-1", "eu-west"])
def test_unknown_region_is_invalid_input(aws: Aws, region: str) -> None:
    with pytest.raises(InvalidInput) as error:
        build_aws_plan(
            aws.config(region=region),
            aws.recorder,
            save_credentials=aws.blocks.save,
            credentials_exist=aws.blocks.exists,
        )
    assert f"AWS region {region!r} does not exist" in error.value.message
    assert aws.ours() == {}


def test_missing_region_is_invalid_input(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(InvalidInput) as error:
        preflight(aws.config(region=None))
    assert "no AWS region" in error.value.message


@pytest.mark.parametrize(
    "name", ["My-Pool", "pool_a", "-pool", "pool-", "a--b", "x" * 41, "", "pool.a", "pööl"]
)
def test_invalid_pool_name_is_invalid_input(name: str) -> None:
    # Refused when the config is made: before any session, client or call exists.
    with pytest.raises(InvalidInput) as error:
        AwsProvisionConfig(pool_name=name, region="us-east-1")
    assert "lowercase letters, digits and single hyphens" in error.value.message
    assert repr(name) in error.value.message


def test_invalid_overrides_and_retention_are_invalid_input(aws: Aws) -> None:
    with pytest.raises(InvalidInput, match="repository name"):
        aws.config(names=AwsNames(repository="Upper"))
    with pytest.raises(InvalidInput, match="role name"):
        aws.config(names=AwsNames(execution_role="x" * 65))
    with pytest.raises(InvalidInput, match="security group name"):
        aws.config(names=AwsNames(security_group="sg-mine"))
    with pytest.raises(InvalidInput, match="one of 1, 3, 5"):
        aws.config(log_retention_days=10)


def test_name_overrides_and_defaults(aws: Aws) -> None:
    config = aws.config(
        names=AwsNames(cluster="flows", log_group="/flows/logs"),
        credentials_block_name="ops-creds",
        log_retention_days=90,
    )
    outputs = aws.apply(config)
    assert outputs["ecs-cluster"].data["name"] == "flows"
    assert outputs["ecs-cluster"].created is True
    assert aws.blocks.exists("ops-creds")
    group = aws.client("logs").describe_log_groups(logGroupNamePrefix="/flows/")["logGroups"][0]
    assert group["retentionInDays"] == 90
    assert aws.config().credentials_block_name == f"{POOL}-aws-credentials"


def test_error_codes_are_translated_at_the_boundary() -> None:
    # moto accepts any key pair and allows every action, so these answers cannot come from it;
    # the boundary sees exactly what botocore raises for them.
    error = ClientError({"Error": {"Code": "ExpiredToken", "Message": "x"}}, "GetCallerIdentity")
    with pytest.raises(InvalidInput, match="rejected the credentials"):
        with translate_errors("iam-user"):
            raise error
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "CreateUser")
    with pytest.raises(ProvisioningError) as failed:
        with translate_errors("iam-user"):
            raise denied
    assert failed.value.step_id == "iam-user"
    assert "permission denied on CreateUser" in failed.value.message


# --- the interface --------------------------------------------------------------------------


def test_steps_follow_the_plan_interface(aws: Aws) -> None:
    plan = aws.plan()
    assert [s.id for s in plan.steps] == ALL_STEPS
    assert len({s.title for s in plan.steps}) == len(ALL_STEPS)
    account = plan.steps[0].check(plan.ctx)
    assert account.status == StepStatus.EXISTS
    assert account.record is not None and account.record.data["account_id"] == ACCOUNT
    check = plan.steps[1].check(plan.ctx)
    assert isinstance(check, StepCheck)
    assert check.status == StepStatus.CREATE
    without = aws.plan(aws.config(create_task_role=False))
    assert "iam-task-role" not in [s.id for s in without.steps]
    assert [s.id for s in without.retired] == ["iam-task-role"]


def test_importing_the_provisioner_does_not_import_boto3() -> None:
    code = "import provisioners.aws, sys; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


# --- the code-bundle bucket -----------------------------------------------------------------

BUCKET = default_bucket_name(POOL, ACCOUNT, "us-east-1")


def test_the_bundle_bucket_is_private_encrypted_and_the_only_bucket_the_server_may_use(
    aws: Aws,
) -> None:
    planned = {p.step_id: p for p in aws.plan().preview()}
    assert planned["s3-bucket"].status == StepStatus.CREATE
    assert BUCKET in planned["s3-bucket"].detail  # the dry run names the bucket

    config = aws.config()
    outputs = aws.apply(config)

    assert outputs["s3-bucket"].created is True
    assert outputs["s3-bucket"].identifier == f"arn:aws:s3:::{BUCKET}"
    assert len(BUCKET) <= 63 and BUCKET.startswith(f"pp-{POOL}-bundles-")
    s3 = aws.client("s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
        True,
    )
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    ownership = s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert template_defaults(outputs, config)["bundle_storage"] == f"s3://{BUCKET}/bundles"

    # The server may put, get and delete bundles under the prefix, and nothing else in S3.
    s3_grants = [
        s
        for s in aws.policy_document()["Statement"]
        if any(a.startswith("s3:") for a in s["Action"])
    ]
    assert s3_grants == [
        {
            "Sid": "PoolCodeBundles",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            "Resource": [f"arn:aws:s3:::{BUCKET}/bundles/*"],
        }
    ]


def test_bucket_drift_is_converged_and_teardown_empties_every_version(aws: Aws) -> None:
    aws.apply()
    s3 = aws.client("s3")
    s3.delete_public_access_block(Bucket=BUCKET)
    plan = aws.plan()
    updates = {p.step_id: p.detail for p in plan.preview() if p.status == StepStatus.UPDATE}
    assert list(updates) == ["s3-bucket"] and "public access block" in updates["s3-bucket"]
    plan.apply()
    assert aws.mutations == [
        "PutPublicAccessBlock",
        "PutBucketEncryption",
        "PutBucketOwnershipControls",
    ]
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"][
        "BlockPublicPolicy"
    ]

    # Old versions and delete markers too: S3 deletes no bucket that holds any.
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket=BUCKET, Key="bundles/a.tar.gz", Body=body)
    s3.put_object(Bucket=BUCKET, Key="bundles/b.tar.gz", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="bundles/b.tar.gz")

    aws.plan().teardown()

    assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert aws.ours() == {}


def test_a_foreign_bucket_of_our_name_is_adopted_and_kept(aws: Aws) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="theirs.txt", Body=b"keep me")

    outputs = aws.apply()

    assert outputs["s3-bucket"].created is False
    assert "adopted" in {p.step_id: p for p in aws.plan().preview()}["s3-bucket"].detail
    assert aws.mutations == []
    aws.plan().teardown()
    assert s3.get_object(Bucket=BUCKET, Key="theirs.txt")["Body"].read() == b"keep me"
    # Used as is: none of our settings or tags were put on it.
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=BUCKET)


def test_another_pools_bucket_is_refused(aws: Aws) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="shared-code")
    s3.put_bucket_tagging(
        Bucket="shared-code",
        Tagging={
            "TagSet": [
                {"Key": POOL_TAG, "Value": "pool-b"},
                {"Key": MANAGED_BY_TAG, "Value": MANAGED_BY},
            ]
        },
    )
    with pytest.raises(ProvisioningError) as failed:
        aws.apply(aws.config(names=AwsNames(bucket="shared-code")))
    assert failed.value.step_id == "s3-bucket"
    assert "belongs to push-pools pool 'pool-b'" in failed.value.message
    assert s3.head_bucket(Bucket="shared-code")


@pytest.mark.parametrize("name", ["ab", "Upper-case", "a..b", "192.168.1.1", "xn--x", "x-s3alias"])
def test_invalid_bucket_override_is_invalid_input(aws: Aws, name: str) -> None:
    with pytest.raises(InvalidInput, match="bucket name"):
        aws.config(names=AwsNames(bucket=name))
