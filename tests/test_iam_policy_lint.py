"""parliament, an IAM policy linter, over every policy document the AWS provisioner writes.

The provisioner runs against moto's server (as in test_provisioner_aws.py) and the documents
are read back from IAM, so a policy a later change adds is linted too. parliament's default
auditors run; each finding they may report is in ACCEPTED with the reason.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import parliament
import pytest

from provisioners.aws import AwsProvisionConfig, aws_session, build_aws_plan
from provisioners.aws.policies import control_plane_policy, task_trust_policy
from provisioners.plan import MemoryRecorder
from tests.emulators.moto_server import MotoServer, aws_test_env

POOL = "lint-pool"
REGION = "us-east-1"


@dataclass(frozen=True)
class Accepted:
    """A finding that stays, and why. `pinned_by`: a condition key every statement granting the
    action on "*" must carry, because that condition is what narrows the "*"."""

    why: str
    pinned_by: str | None = None


# (parliament issue, action) -> why it stays. Only actions whose "*" AWS leaves no way around.
ACCEPTED = {
    ("RESOURCE_STAR", "ecs:ListTasks"): Accepted(
        why=(
            "the Service Authorization Reference's only resource for ListTasks is a container "
            "instance, which listing a cluster's tasks does not name (Fargate tasks have none), "
            "so ECS authorizes it on '*'; the statement's ecs:cluster condition pins it to our "
            "cluster"
        ),
        pinned_by="ecs:cluster",
    ),
}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def documents(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every policy document in the account after provisioning a pool with a task role."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        aws_test_env(monkeypatch, tmp_path_factory.mktemp("aws"), REGION)
        moto.reset()
        moto.add_aws_managed_policies("AmazonECSTaskExecutionRolePolicy")
        config = AwsProvisionConfig(
            POOL, region=REGION, endpoint_url=moto.endpoint, create_task_role=True
        )
        saved: dict[str, str] = {}
        plan = build_aws_plan(
            config,
            MemoryRecorder(),
            save_credentials=lambda name, key_id, secret, region: saved.update({name: key_id}),
            credentials_exist=lambda name: name in saved,
            session=aws_session(config),
        )
        plan.apply()
        iam = boto3.client("iam", region_name=REGION, endpoint_url=moto.endpoint)
        return written_documents(iam)


def written_documents(iam: Any) -> dict[str, Any]:
    """Trust and inline policies of every role, inline policies of every user, and the default
    version of every customer managed policy, by a name saying what each is."""
    found: dict[str, Any] = {}
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        found[f"trust policy of role {name}"] = as_resource_policy(
            role["AssumeRolePolicyDocument"], role["Arn"]
        )
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            found[f"inline policy {policy} of role {name}"] = document
    for user in iam.list_users()["Users"]:
        name = user["UserName"]
        for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
            document = iam.get_user_policy(UserName=name, PolicyName=policy)["PolicyDocument"]
            found[f"inline policy {policy} of user {name}"] = document
    for policy in iam.list_policies(Scope="Local")["Policies"]:
        version = iam.get_policy_version(
            PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
        )
        found[f"managed policy {policy['PolicyName']}"] = version["PolicyVersion"]["Document"]
    return found


def as_resource_policy(trust: dict[str, Any], role_arn: str) -> dict[str, Any]:
    """A role's trust policy is a resource policy on the role, but IAM refuses a Resource
    element in it while parliament requires one: lint a copy naming the role."""
    document = copy.deepcopy(trust)
    for statement in document["Statement"]:
        statement.setdefault("Resource", role_arn)
    return document


def findings(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(issue, action) for each action parliament flags; (issue, detail) for other findings."""
    policy = parliament.analyze_policy_string(json.dumps(document))
    found = []
    for finding in policy.findings:
        detail = finding.detail
        if isinstance(detail, list) and all(isinstance(item, str) for item in detail):
            found += [(finding.issue, action) for action in detail]
        else:
            found.append((finding.issue, json.dumps(detail, default=str)))
    return found


def unpinned(document: dict[str, Any]) -> list[tuple[str, str]]:
    """("UNPINNED", action) for each accepted "*" grant whose statement lacks the condition that
    made it acceptable: parliament reports the "*" either way."""
    found = []
    for (_, action), accepted in ACCEPTED.items():
        if accepted.pinned_by is None:
            continue
        for statement in document["Statement"]:
            actions = statement["Action"]
            granted = [actions] if isinstance(actions, str) else actions
            keys = {key for test in statement.get("Condition", {}).values() for key in test}
            if (
                statement["Effect"] == "Allow"
                and action in granted
                and statement["Resource"] in ("*", ["*"])
                and accepted.pinned_by not in keys
            ):
                found.append(("UNPINNED", action))
    return found


def not_accepted(documents: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Each document's findings that ACCEPTED does not cover; documents without any are left out."""
    flagged = {
        name: [f for f in findings(document) if f not in ACCEPTED] + unpinned(document)
        for name, document in documents.items()
    }
    return {name: found for name, found in flagged.items() if found}


def test_every_policy_the_provisioner_writes_passes_the_linter(documents: dict[str, Any]) -> None:
    ours = {name for name in documents if "push-pools-" in name}
    assert ours >= {
        f"trust policy of role push-pools-{POOL}-execution",
        f"trust policy of role push-pools-{POOL}-task",
        f"inline policy push-pools-logs of role push-pools-{POOL}-execution",
        f"managed policy push-pools-{POOL}-control-plane",
    }
    assert ours == set(documents), "the account held documents push-pools did not write"
    assert not_accepted(documents) == {}
    # Each accepted finding still happens: an entry nothing needs any more is removed.
    every = {f for document in documents.values() for f in findings(document)}
    assert set(ACCEPTED) <= every


# The allow-list itself, on the provisioner's documents built directly (no AWS): each widening
# below is a plausible slip that must fail the test above.
ACCOUNT = "123456789012"
CONTROL_PLANE = "control plane"


def control_plane() -> dict[str, Any]:
    ecs = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    return control_plane_policy(
        partition="aws",
        region=REGION,
        account_id=ACCOUNT,
        cluster_arn=f"{ecs}:cluster/push-pools-{POOL}",
        cluster_name=f"push-pools-{POOL}",
        pass_role_arns=[f"arn:aws:iam::{ACCOUNT}:role/push-pools-{POOL}-execution"],
        log_group_arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/push-pools/{POOL}",
        repository_arn=f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/push-pools-{POOL}",
        bundle_objects_arn=f"arn:aws:s3:::pp-{POOL}-bundles-0123456789/bundles/*",
        family_prefix=f"push-pools-{POOL}-",
    )


def widened(sid: str, **changes: Any) -> dict[str, Any]:
    """The control-plane policy with statement `sid` changed (a None value removes the key)."""
    document = control_plane()
    statement = next(s for s in document["Statement"] if s["Sid"] == sid)
    for key, value in changes.items():
        if value is None:
            del statement[key]
        else:
            statement[key] = value
    return document


def test_the_unwidened_policy_has_only_accepted_findings() -> None:
    assert not_accepted({CONTROL_PLANE: control_plane()}) == {}


def test_the_linter_flags_a_statement_widened_to_every_resource() -> None:
    document = widened("WatchTasksOnPoolCluster", Resource="*")
    assert not_accepted({CONTROL_PLANE: document})[CONTROL_PLANE] == [
        ("RESOURCE_STAR", "ecs:DescribeTasks"),
        ("RESOURCE_STAR", "ecs:StopTask"),
    ]


def test_the_linter_flags_registering_into_any_family() -> None:
    document = widened("RegisterPoolTaskDefinitions", Resource="*")
    assert not_accepted({CONTROL_PLANE: document})[CONTROL_PLANE] == [
        ("RESOURCE_STAR", "ecs:RegisterTaskDefinition")
    ]


def test_the_linter_flags_bundle_access_to_every_bucket() -> None:
    document = widened("PoolCodeBundles", Resource="*")
    assert not_accepted({CONTROL_PLANE: document})[CONTROL_PLANE] == [
        ("RESOURCE_STAR", "s3:DeleteObject"),
        ("RESOURCE_STAR", "s3:GetObject"),
        ("RESOURCE_STAR", "s3:PutObject"),
    ]


def test_the_linter_flags_a_service_wildcard() -> None:
    document = widened("WatchTasksOnPoolCluster", Action=["ecs:*"])
    issues = {issue for issue, _ in not_accepted({CONTROL_PLANE: document})[CONTROL_PLANE]}
    assert issues == {"RESOURCE_MISMATCH"}


def test_an_accepted_star_without_its_condition_is_flagged() -> None:
    # parliament reports ListTasks on "*" with or without the cluster condition; without it the
    # server could list the tasks of every cluster in the account.
    document = widened("ListTasksOnPoolCluster", Condition=None)
    assert not_accepted({CONTROL_PLANE: document})[CONTROL_PLANE] == [("UNPINNED", "ecs:ListTasks")]


def test_the_linter_reads_trust_policies() -> None:
    name = "trust policy"
    role = f"arn:aws:iam::{ACCOUNT}:role/push-pools-{POOL}-execution"
    trust = task_trust_policy(partition="aws", region=REGION, account_id=ACCOUNT)
    assert not_accepted({name: as_resource_policy(trust, role)}) == {}
    # A key sts:AssumeRole never carries: ECS could not assume the role (a plausible slip for
    # the aws:SourceArn guard).
    trust["Statement"][0]["Condition"] = {"ArnEquals": {"ecs:cluster": "arn:aws:ecs:*"}}
    assert [issue for issue, _ in not_accepted({name: as_resource_policy(trust, role)})[name]] == [
        "UNKNOWN_CONDITION_FOR_ACTION"
    ]
