"""IAM steps: the ECS task roles, the control plane's user, its policy and its access key.

Step verbs follow provisioners/plan.py. Roles may be adopted by name (used as is); the user and
its policy never are, since we attach policies to and make keys for them.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from provisioners.aws.base import AwsStep, StepIds, canonical, owned, paginate, tags_of
from provisioners.aws.errors import CLOUD, absent_on
from provisioners.aws.policies import (
    EXECUTION_MANAGED_POLICY,
    control_plane_policy,
    execution_logs_policy,
    task_trust_policy,
)
from provisioners.aws.s3 import BUNDLE_PREFIX, bucket_arn, bucket_name
from provisioners.aws.session import AwsContext
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck
from push_pools.executors.ecs.job import family_prefix

__all__ = ["AccessKeyStep", "PolicyStep", "RoleStep", "UserStep", "wanted_arns"]

GONE = frozenset({"NoSuchEntity"})
LOGS_POLICY_NAME = "push-pools-logs"
# AWS allows five versions of a managed policy; one slot must be free for a new version.
MAX_POLICY_VERSIONS = 5
MAX_ACCESS_KEYS = 2


def wanted_arns(ctx: AwsContext) -> dict[str, Any]:
    """The ARNs the policies grant on: from earlier steps' records when present, else derived
    from the names (a preview of an empty account has no records yet; ARNs are deterministic)."""
    names = ctx.names
    arns: dict[str, Any] = {
        "log_group": ctx.output(StepIds.LOG_GROUP, "arn")
        or ctx.arn("logs", f"log-group:{names.log_group}"),
        "repository": ctx.output(StepIds.REPOSITORY, "arn")
        or ctx.arn("ecr", f"repository/{names.repository}"),
        "cluster": ctx.output(StepIds.CLUSTER, "arn") or ctx.arn("ecs", f"cluster/{names.cluster}"),
        "cluster_name": ctx.output(StepIds.CLUSTER, "name") or names.cluster,
        "bundles": f"{bucket_arn(ctx, bucket_name(ctx))}/{BUNDLE_PREFIX}/*",
        "execution_role": ctx.output(StepIds.EXECUTION_ROLE, "arn")
        or ctx.arn("iam", f"role/{names.execution_role}", regional=False),
    }
    roles = [arns["execution_role"]]
    if ctx.config.create_task_role:
        roles.append(
            ctx.output(StepIds.TASK_ROLE, "arn")
            or ctx.arn("iam", f"role/{names.task_role}", regional=False)
        )
    arns["pass_roles"] = roles
    return arns


class RoleStep(AwsStep):
    """A role ECS tasks assume: the execution role (pull images, write logs) or the task role
    (the flow's own AWS permissions, which the user attaches)."""

    kind = "aws:iam:role"

    def __init__(self, step_id: str, name: str, purpose: Literal["execution", "task"]) -> None:
        self.id = step_id
        self.name = name
        self.purpose = purpose
        self.title = f"IAM {purpose} role {name}"

    def _trust(self, ctx: AwsContext) -> dict[str, Any]:
        identity = ctx.identity
        return task_trust_policy(
            partition=identity.partition, region=ctx.region, account_id=identity.account_id
        )

    def _managed(self, ctx: AwsContext) -> list[str]:
        if self.purpose != "execution":
            return []
        return [f"arn:{ctx.identity.partition}:iam::aws:policy/{EXECUTION_MANAGED_POLICY}"]

    def _inline(self, ctx: AwsContext) -> dict[str, dict[str, Any]]:
        if self.purpose != "execution":
            return {}
        return {
            LOGS_POLICY_NAME: execution_logs_policy(log_group_arn=wanted_arns(ctx)["log_group"])
        }

    def _record_of(self, role: dict[str, Any], created: bool) -> ResourceRecord:
        return self.record(
            role["Arn"], {"name": role["RoleName"], "arn": role["Arn"]}, created=created
        )

    def _check(self, ctx: AwsContext) -> StepCheck:
        found = absent_on(GONE, ctx.client("iam").get_role, RoleName=self.name)
        if found is None:
            return self.missing("role for ECS tasks, trusted by ecs-tasks.amazonaws.com")
        role = found["Role"]
        created = owned(ctx, tags_of(role.get("Tags")), f"IAM role {self.name}", adoptable=True)
        drift = self._drift(ctx, role) if created else None
        return self.found(self._record_of(role, created), drift)

    def _drift(self, ctx: AwsContext, role: dict[str, Any]) -> list[str]:
        iam = ctx.client("iam")
        drift = []
        if canonical(role["AssumeRolePolicyDocument"]) != canonical(self._trust(ctx)):
            drift.append("trust policy")
        attached = {
            p["PolicyArn"]
            for p in paginate(
                iam, "list_attached_role_policies", "AttachedPolicies", RoleName=self.name
            )
        }
        drift += [f"managed policy {arn}" for arn in self._managed(ctx) if arn not in attached]
        for policy_name, document in self._inline(ctx).items():
            current = absent_on(
                GONE, iam.get_role_policy, RoleName=self.name, PolicyName=policy_name
            )
            if current is None or canonical(current["PolicyDocument"]) != canonical(document):
                drift.append(f"inline policy {policy_name}")
        return drift

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        iam = ctx.client("iam")
        made = absent_on(
            {"EntityAlreadyExists"},
            iam.create_role,
            RoleName=self.name,
            AssumeRolePolicyDocument=json.dumps(self._trust(ctx)),
            Description=f"push-pools pool {ctx.config.pool_name}: ECS {self.purpose} role",
            Tags=ctx.tag_list(),
        )
        if made is None:  # created meanwhile (a concurrent run): the same ownership rules apply
            role = iam.get_role(RoleName=self.name)["Role"]
            if not owned(ctx, tags_of(role.get("Tags")), f"IAM role {self.name}", adoptable=True):
                return self._record_of(role, created=False)
        else:
            role = made["Role"]
        self._converge(ctx, role)
        return self._record_of(role, created=True)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        role = ctx.client("iam").get_role(RoleName=self.name)["Role"]
        self._converge(ctx, role)
        return self._record_of(role, created=True)

    def _converge(self, ctx: AwsContext, role: dict[str, Any]) -> None:
        iam = ctx.client("iam")
        trust = self._trust(ctx)
        if canonical(role["AssumeRolePolicyDocument"]) != canonical(trust):
            iam.update_assume_role_policy(RoleName=self.name, PolicyDocument=json.dumps(trust))
        attached = {
            p["PolicyArn"]
            for p in paginate(
                iam, "list_attached_role_policies", "AttachedPolicies", RoleName=self.name
            )
        }
        for arn in self._managed(ctx):
            if arn not in attached:
                iam.attach_role_policy(RoleName=self.name, PolicyArn=arn)
        for policy_name, document in self._inline(ctx).items():
            current = absent_on(
                GONE, iam.get_role_policy, RoleName=self.name, PolicyName=policy_name
            )
            if current is None or canonical(current["PolicyDocument"]) != canonical(document):
                iam.put_role_policy(
                    RoleName=self.name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
                )

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        iam = ctx.client("iam")
        name = record.data.get("name", self.name)
        attached = absent_on(
            GONE,
            paginate,
            client=iam,
            operation="list_attached_role_policies",
            key="AttachedPolicies",
            RoleName=name,
        )
        if attached is None:
            return  # the role is gone already
        for policy in attached:
            absent_on(GONE, iam.detach_role_policy, RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy_name in paginate(iam, "list_role_policies", "PolicyNames", RoleName=name):
            absent_on(GONE, iam.delete_role_policy, RoleName=name, PolicyName=policy_name)
        profiles = paginate(
            iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name
        )
        for profile in profiles:
            absent_on(
                GONE,
                iam.remove_role_from_instance_profile,
                InstanceProfileName=profile["InstanceProfileName"],
                RoleName=name,
            )
        absent_on(GONE, iam.delete_role, RoleName=name)


class UserStep(AwsStep):
    """The IAM user the push-pools server acts as (its key goes into the credentials block)."""

    id = StepIds.USER
    kind = "aws:iam:user"

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"IAM user {name} (push-pools control plane)"

    def _record_of(self, user: dict[str, Any]) -> ResourceRecord:
        return self.record(user["Arn"], {"name": user["UserName"], "arn": user["Arn"]})

    def _check(self, ctx: AwsContext) -> StepCheck:
        found = absent_on(GONE, ctx.client("iam").get_user, UserName=self.name)
        if found is None:
            return self.missing("user for the push-pools server to run ECS tasks as")
        user = found["User"]
        owned(ctx, tags_of(user.get("Tags")), f"IAM user {self.name}", adoptable=False)
        return self.found(self._record_of(user))

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        iam = ctx.client("iam")
        made = absent_on(
            {"EntityAlreadyExists"}, iam.create_user, UserName=self.name, Tags=ctx.tag_list()
        )
        if made is None:
            user = iam.get_user(UserName=self.name)["User"]
            owned(ctx, tags_of(user.get("Tags")), f"IAM user {self.name}", adoptable=False)
        else:
            user = made["User"]
        return self._record_of(user)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        # IAM refuses to delete a user that still has keys, policies, groups or a password.
        iam = ctx.client("iam")
        name = record.data.get("name", self.name)
        keys = absent_on(
            GONE,
            paginate,
            client=iam,
            operation="list_access_keys",
            key="AccessKeyMetadata",
            UserName=name,
        )
        if keys is None:
            return  # the user is gone already
        for key in keys:
            absent_on(GONE, iam.delete_access_key, UserName=name, AccessKeyId=key["AccessKeyId"])
        attached = paginate(iam, "list_attached_user_policies", "AttachedPolicies", UserName=name)
        for policy in attached:
            absent_on(GONE, iam.detach_user_policy, UserName=name, PolicyArn=policy["PolicyArn"])
        for policy_name in paginate(iam, "list_user_policies", "PolicyNames", UserName=name):
            absent_on(GONE, iam.delete_user_policy, UserName=name, PolicyName=policy_name)
        for group in paginate(iam, "list_groups_for_user", "Groups", UserName=name):
            absent_on(GONE, iam.remove_user_from_group, GroupName=group["GroupName"], UserName=name)
        absent_on(GONE, iam.delete_login_profile, UserName=name)
        absent_on(GONE, iam.delete_user, UserName=name)


class PolicyStep(AwsStep):
    """The control plane's customer-managed policy, attached to the user. Drift in the document
    becomes a new default policy version, so the change is visible in IAM's version history."""

    id = StepIds.USER_POLICY
    kind = "aws:iam:policy"

    def __init__(self, name: str, user_name: str) -> None:
        self.name = name
        self.user_name = user_name
        self.title = f"IAM policy {name} (least privilege, attached to {user_name})"

    def _arn(self, ctx: AwsContext) -> str:
        return ctx.arn("iam", f"policy/{self.name}", regional=False)

    def desired(self, ctx: AwsContext) -> dict[str, Any]:
        arns = wanted_arns(ctx)
        identity = ctx.identity
        return control_plane_policy(
            partition=identity.partition,
            region=ctx.region,
            account_id=identity.account_id,
            cluster_arn=arns["cluster"],
            cluster_name=arns["cluster_name"],
            pass_role_arns=arns["pass_roles"],
            log_group_arn=arns["log_group"],
            repository_arn=arns["repository"],
            bundle_objects_arn=arns["bundles"],
            family_prefix=family_prefix(ctx.config.pool_name),
        )

    def _record_of(self, arn: str) -> ResourceRecord:
        return self.record(arn, {"name": self.name, "arn": arn})

    def _check(self, ctx: AwsContext) -> StepCheck:
        iam = ctx.client("iam")
        arn = self._arn(ctx)
        found = absent_on(GONE, iam.get_policy, PolicyArn=arn)
        if found is None:
            return self.missing("grants ECS, logs and ECR on this pool's resources only")
        policy = found["Policy"]
        owned(ctx, tags_of(policy.get("Tags")), f"IAM policy {self.name}", adoptable=False)
        drift = []
        if self._document_drifted(ctx, policy["DefaultVersionId"]):
            drift.append("policy document")
        if not self._attached(ctx, arn):
            drift.append(f"not attached to {self.user_name}")
        return self.found(self._record_of(arn), drift)

    def _document_drifted(self, ctx: AwsContext, version_id: str) -> bool:
        version = ctx.client("iam").get_policy_version(
            PolicyArn=self._arn(ctx), VersionId=version_id
        )
        return canonical(version["PolicyVersion"]["Document"]) != canonical(self.desired(ctx))

    def _attached(self, ctx: AwsContext, arn: str) -> bool:
        attached = absent_on(
            GONE,
            paginate,
            client=ctx.client("iam"),
            operation="list_attached_user_policies",
            key="AttachedPolicies",
            UserName=self.user_name,
        )
        return any(p["PolicyArn"] == arn for p in attached or [])

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        iam = ctx.client("iam")
        made = absent_on(
            {"EntityAlreadyExists"},
            iam.create_policy,
            PolicyName=self.name,
            PolicyDocument=json.dumps(self.desired(ctx)),
            Description=f"push-pools pool {ctx.config.pool_name}: run flow runs on ECS",
            Tags=ctx.tag_list(),
        )
        if made is None:
            policy = iam.get_policy(PolicyArn=self._arn(ctx))["Policy"]
            owned(ctx, tags_of(policy.get("Tags")), f"IAM policy {self.name}", adoptable=False)
            return self._update(ctx, self._record_of(policy["Arn"]))
        arn = made["Policy"]["Arn"]
        iam.attach_user_policy(UserName=self.user_name, PolicyArn=arn)
        return self._record_of(arn)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        iam = ctx.client("iam")
        arn = self._arn(ctx)
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
        if self._document_drifted(ctx, policy["DefaultVersionId"]):
            versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
            if len(versions) >= MAX_POLICY_VERSIONS:
                oldest = min(
                    (v for v in versions if not v["IsDefaultVersion"]),
                    key=lambda v: v["CreateDate"],
                )
                iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
            iam.create_policy_version(
                PolicyArn=arn, PolicyDocument=json.dumps(self.desired(ctx)), SetAsDefault=True
            )
        if not self._attached(ctx, arn):
            iam.attach_user_policy(UserName=self.user_name, PolicyArn=arn)
        return self._record_of(arn)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        iam = ctx.client("iam")
        arn = record.identifier
        entities = absent_on(GONE, iam.list_entities_for_policy, PolicyArn=arn)
        if entities is None:
            return  # the policy is gone already
        for user in entities.get("PolicyUsers", []):
            absent_on(GONE, iam.detach_user_policy, UserName=user["UserName"], PolicyArn=arn)
        for role in entities.get("PolicyRoles", []):
            absent_on(GONE, iam.detach_role_policy, RoleName=role["RoleName"], PolicyArn=arn)
        for group in entities.get("PolicyGroups", []):
            absent_on(GONE, iam.detach_group_policy, GroupName=group["GroupName"], PolicyArn=arn)
        for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                absent_on(
                    GONE, iam.delete_policy_version, PolicyArn=arn, VersionId=version["VersionId"]
                )
        absent_on(GONE, iam.delete_policy, PolicyArn=arn)


class AccessKeyStep(AwsStep):
    """The user's access key, handed to the CLI's `save_credentials` and kept nowhere else.

    The block is the source of truth: while it exists no key is made. Without it a new key is
    made; the secret goes straight into the block and never into a record, a log or a message.

    The two-keys-per-user limit: when the user already has two keys, the key this pool recorded
    earlier (its secret lived only in the block, which is gone) is deleted to make room. A key
    push-pools did not record is never deleted, because something else may be using it; then the
    step fails and names the keys to delete by hand.
    """

    id = StepIds.ACCESS_KEY
    kind = "aws:iam:access-key"

    def __init__(self, user_name: str, block_name: str) -> None:
        self.user_name = user_name
        self.block_name = block_name
        self.title = f"access key for {user_name}, stored in block '{block_name}'"

    def _keys(self, ctx: AwsContext) -> list[dict[str, Any]] | None:
        return absent_on(
            GONE,
            paginate,
            client=ctx.client("iam"),
            operation="list_access_keys",
            key="AccessKeyMetadata",
            UserName=self.user_name,
        )

    def _check(self, ctx: AwsContext) -> StepCheck:
        prior = ctx.outputs.get(self.id)
        if not ctx.credentials_exist(self.block_name):
            return self.missing(f"new key, saved encrypted in aws-credentials '{self.block_name}'")
        recorded = prior.data.get("access_key_id") if prior is not None else None
        if prior is None or not recorded:
            if not self._keys(ctx):
                # The user has no key at all (or does not exist yet: it will be new), so the
                # block cannot hold a working key of it: a leftover of an earlier teardown.
                return self.missing(
                    f"block '{self.block_name}' holds no key of {self.user_name}: a new key "
                    "replaces it"
                )
            # A block this run did not make (by hand, or a crash before our record): keep it.
            record = self.record(
                f"block:{self.block_name}",
                {"credentials_block": self.block_name, "user": self.user_name},
                created=False,
            )
            return self.found(record, detail=f"block '{self.block_name}' exists; no key made")
        keys = self._keys(ctx) or []
        if all(k["AccessKeyId"] != recorded for k in keys):
            # The block holds a key that was deleted (or a user that was re-created): useless.
            return self.found(prior, [f"key {recorded} in the block no longer exists"])
        return self.found(prior)

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        return self._issue(ctx)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        return self._issue(ctx)

    def _issue(self, ctx: AwsContext) -> ResourceRecord:
        iam = ctx.client("iam")
        prior = ctx.outputs.get(self.id)
        recorded = prior.data.get("access_key_id") if prior is not None else None
        keys = sorted(self._keys(ctx) or [], key=lambda k: k["CreateDate"])
        stale = [k["AccessKeyId"] for k in keys if k["AccessKeyId"] == recorded]
        if len(keys) >= MAX_ACCESS_KEYS:
            if not stale:
                ids = ", ".join(k["AccessKeyId"] for k in keys)
                raise ProvisioningError(
                    f"IAM user {self.user_name} already has {len(keys)} access keys ({ids}), "
                    f"the most AWS allows, and push-pools made none of them, so it deletes "
                    f"none. Delete one you no longer use (aws iam delete-access-key --user-name "
                    f"{self.user_name} --access-key-id {keys[0]['AccessKeyId']}) and run again",
                    step_id=self.id,
                    cloud=CLOUD,
                )
            iam.delete_access_key(UserName=self.user_name, AccessKeyId=stale.pop(0))
        made = iam.create_access_key(UserName=self.user_name)["AccessKey"]
        key_id = made["AccessKeyId"]
        try:
            ctx.save_credentials(self.block_name, key_id, made["SecretAccessKey"], ctx.region)
        except BaseException:
            # Nobody else ever saw the secret: a key we could not store is a key to delete.
            absent_on(GONE, iam.delete_access_key, UserName=self.user_name, AccessKeyId=key_id)
            raise
        for old in stale:
            # Our earlier key: the block no longer holds its secret, so nothing can use it.
            absent_on(GONE, iam.delete_access_key, UserName=self.user_name, AccessKeyId=old)
        return self.record(
            key_id,
            {"access_key_id": key_id, "credentials_block": self.block_name, "user": self.user_name},
        )

    def _sweep(self, ctx: AwsContext) -> None:
        pass  # an unrecorded key dies with the user (the user's sweep deletes its keys)

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        # The block itself belongs to the CLI (it deletes it after teardown).
        key_id = record.data.get("access_key_id")
        if key_id:
            absent_on(
                GONE,
                ctx.client("iam").delete_access_key,
                UserName=record.data.get("user", self.user_name),
                AccessKeyId=key_id,
            )
