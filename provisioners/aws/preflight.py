"""Pre-flight: who are we, and may we do what provisioning needs? Asked before anything changes.

STS names the caller and its account. IAM's policy simulator then evaluates every action the
plan may call for that caller; the denied ones come back as one list, so the user fixes their
permissions once instead of meeting AccessDenied step by step. Where simulation is impossible
(root, federated users, the permission to simulate is itself denied, or the endpoint does not
implement it, as moto does not) the report says so and provisioning may still go ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioners.aws.config import AwsProvisionConfig
from provisioners.aws.errors import CLOUD, error_code, translate_errors
from provisioners.aws.session import aws_session, client_config
from provisioners.plan import ProvisioningError

__all__ = ["PreflightReport", "preflight", "required_actions"]

# What the steps call, as IAM action names. Tagging at creation needs the Tag* action too.
_ALWAYS = (
    "ec2:CreateSecurityGroup",
    "ec2:CreateTags",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ecr:CreateRepository",
    "ecr:DescribeRepositories",
    "ecr:ListTagsForResource",
    "ecr:TagResource",
    "ecs:CreateCluster",
    "ecs:DescribeClusters",
    "ecs:TagResource",
    "iam:AttachRolePolicy",
    "iam:AttachUserPolicy",
    "iam:CreateAccessKey",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:CreateRole",
    "iam:CreateServiceLinkedRole",  # ECS makes its service-linked role with the first cluster
    "iam:CreateUser",
    "iam:DeleteAccessKey",
    "iam:DeletePolicyVersion",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:GetUser",
    "iam:ListAccessKeys",
    "iam:ListAttachedRolePolicies",
    "iam:ListAttachedUserPolicies",
    "iam:ListPolicyVersions",
    "iam:PutRolePolicy",
    "iam:TagPolicy",
    "iam:TagRole",
    "iam:TagUser",
    "iam:UpdateAssumeRolePolicy",
    "logs:CreateLogGroup",
    "logs:DescribeLogGroups",
    "logs:ListTagsForResource",
    "logs:PutRetentionPolicy",
    "logs:TagResource",
    # The code-bundle bucket (HeadBucket is authorized as s3:ListBucket).
    "s3:CreateBucket",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketTagging",
    "s3:GetEncryptionConfiguration",
    "s3:ListBucket",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutEncryptionConfiguration",
)
# Only without a default VPC.
_NEW_VPC = (
    "ec2:AssociateRouteTable",
    "ec2:AttachInternetGateway",
    "ec2:CreateInternetGateway",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSubnet",
    "ec2:CreateVpc",
    "ec2:ModifySubnetAttribute",
)
_SIMULATION_BATCH = 50


def required_actions(*, new_vpc: bool) -> list[str]:
    """The IAM actions provisioning may call; `new_vpc` when the account has no default VPC."""
    return sorted(_ALWAYS + (_NEW_VPC if new_vpc else ()))


@dataclass(frozen=True)
class PreflightReport:
    account_id: str
    caller_arn: str
    region: str
    permissions_checked: bool  # False: `note` says why the simulator could not be used
    missing_permissions: tuple[str, ...]  # denied actions, sorted; empty when unchecked
    note: str  # one line for people

    @property
    def ok(self) -> bool:
        return not self.missing_permissions

    def raise_for_missing(self) -> None:
        if self.missing_permissions:
            raise ProvisioningError(
                f"{self.caller_arn} lacks {len(self.missing_permissions)} permission(s) "
                f"provisioning needs: {', '.join(self.missing_permissions)}. Grant them (or run "
                "as an identity that has them) and try again; nothing was created",
                cloud=CLOUD,
            )


def preflight(config: AwsProvisionConfig, *, session: Any = None) -> PreflightReport:
    """Account, caller and missing permissions; read-only. InvalidInput for bad credentials."""
    session = session or aws_session(config)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=config.endpoint_url, config=client_config())

    with translate_errors():
        identity = client("sts").get_caller_identity()
    account, arn = identity["Account"], identity["Arn"]
    new_vpc = _lacks_default_vpc(client("ec2"))
    actions = required_actions(new_vpc=new_vpc)

    def report(checked: bool, missing: list[str], note: str) -> PreflightReport:
        return PreflightReport(
            account_id=account,
            caller_arn=arn,
            region=session.region_name,
            permissions_checked=checked,
            missing_permissions=tuple(sorted(missing)),
            note=note,
        )

    iam = client("iam")
    principal, why_not = _simulation_principal(iam, arn)
    if principal is None:
        return report(False, [], f"permissions not checked: {why_not}")
    denied, why_not = _simulate(iam, principal, actions)
    if denied is None:
        return report(False, [], f"permissions not checked: {why_not}")
    if denied:
        return report(True, denied, f"{len(denied)} of {len(actions)} needed actions are denied")
    note = f"all {len(actions)} needed actions are allowed"
    if config.endpoint_url:
        # An emulator may answer "allowed" to everything without evaluating any policy.
        note += f" (as answered by {config.endpoint_url}; emulators may not evaluate policies)"
    return report(True, [], note)


def _lacks_default_vpc(ec2: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    except ClientError:
        return True  # cannot tell (DescribeVpcs denied is reported by the simulation): assume so
    return not vpcs


def _simulation_principal(iam: Any, caller_arn: str) -> tuple[str | None, str]:
    """The IAM user or role ARN the simulator can evaluate, or None and the reason."""
    from botocore.exceptions import ClientError

    parts = caller_arn.split(":", 5)
    if len(parts) != 6:
        return None, f"unrecognised caller ARN {caller_arn!r}"
    service, resource = parts[2], parts[5]
    if service == "iam" and resource == "root":
        return None, "running as the account's root user, which may do everything"
    if service == "iam" and resource.startswith(("user/", "role/")):
        return caller_arn, ""
    if service == "sts" and resource.startswith("assumed-role/"):
        role_name = resource.split("/")[1]
        try:
            # The role's own ARN carries its path, which the session ARN leaves out.
            return str(iam.get_role(RoleName=role_name)["Role"]["Arn"]), ""
        except ClientError:
            return f"arn:{parts[1]}:iam::{parts[4]}:role/{role_name}", ""
    return None, f"the simulator cannot evaluate a caller like {caller_arn}"


def _simulate(iam: Any, principal: str, actions: list[str]) -> tuple[list[str] | None, str]:
    """Denied actions, or None and the reason the simulator gave no answer."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    denied: list[str] = []
    try:
        for start in range(0, len(actions), _SIMULATION_BATCH):
            batch = actions[start : start + _SIMULATION_BATCH]
            pages = iam.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=principal, ActionNames=batch
            )
            for page in pages:
                for result in page.get("EvaluationResults", []):
                    if result.get("EvalDecision") != "allowed":
                        denied.append(result["EvalActionName"])
    except ClientError as exc:
        code = error_code(exc)
        if code in {"AccessDenied", "AccessDeniedException"}:
            return None, f"{principal} may not call iam:SimulatePrincipalPolicy"
        if code == "NoSuchEntity":
            return None, f"IAM does not know the principal {principal}"
        return None, f"the policy simulator failed ({code})"
    except (BotoCoreError, ResponseParserError) as exc:
        # moto answers SimulatePrincipalPolicy with a 500 HTML page (NotImplementedError),
        # which botocore reports as an unparsable response rather than a ClientError.
        return (
            None,
            f"the IAM endpoint does not implement the policy simulator ({type(exc).__name__})",
        )
    return denied, ""
