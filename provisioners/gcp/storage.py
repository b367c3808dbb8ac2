"""Cloud Storage steps: the bucket the push-pools server keeps this pool's code bundles in
(push_pools/bundle_storage.py; the pool's `bundle_storage` job variable points at it), and
roles/storage.objectAdmin for the control-plane account on that bucket only.

Verbs follow provisioners/plan.py. A bucket we create has uniform bucket-level access (IAM
only, no ACLs) and public access prevention enforced; drift from those is converged. A bucket
someone else made (no labels of ours) is adopted as is and never deleted. Teardown deletes a
bucket of ours with every object in it: bundles are uploaded again by the next deploy.

The binding is a read-modify-write of the bucket's IAM policy that keeps every other binding,
as provisioners/gcp/bindings.py does for the project's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from provisioners.gcp.base import GcpStep, StepIds, label_owner, owned
from provisioners.gcp.bindings import RoleBindingStep
from provisioners.gcp.clients import GcpContext, retry
from provisioners.plan import ResourceRecord, StepCheck
from push_pools.errors import InvalidInput

__all__ = ["BUNDLE_PREFIX", "OBJECT_ADMIN", "BucketRoleStep", "BucketStep", "bucket_name"]

# Where under the bucket the server writes bundles.
BUNDLE_PREFIX = "bundles"
OBJECT_ADMIN = "roles/storage.objectAdmin"
_ENFORCED = "enforced"


def bucket_name(pool: str, project: str) -> str:
    """`pp-<pool>-bundles-<8 hex>`: bucket names are global across all projects, so the project
    goes in as a hash (at most 60 characters for a 40-character pool name)."""
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    return f"pp-{pool}-bundles-{digest}"


def _resource(name: str) -> str:
    # Cloud Storage's own resource name for a bucket (the project is not part of it).
    return f"projects/_/buckets/{name}"


class BucketStep(GcpStep):
    id = StepIds.BUCKET
    kind = "gcp:storage:bucket"
    title = "Cloud Storage bucket for the code bundles"

    def _name(self, ctx: GcpContext) -> str:
        return str(ctx.output(self.id, "name") or bucket_name(ctx.config.pool_name, ctx.project))

    def _find(self, ctx: GcpContext, name: str) -> Any:
        from google.api_core.exceptions import Forbidden, NotFound

        bucket = ctx.clients.storage(ctx.project).bucket(name)
        try:
            bucket.reload(retry=retry())
        except NotFound:
            return None
        except Forbidden:
            raise _taken(name) from None
        return bucket

    def _record_of(self, ctx: GcpContext, bucket: Any) -> ResourceRecord:
        pool, managed = label_owner(bucket.labels)
        created = owned(ctx, pool, managed, f"Cloud Storage bucket {bucket.name}")
        data = {"name": bucket.name, "location": bucket.location, "prefix": BUNDLE_PREFIX}
        return self.record(_resource(bucket.name), data, created=created)

    @staticmethod
    def _drift(bucket: Any) -> list[str]:
        config = bucket.iam_configuration
        drift = []
        if not config.uniform_bucket_level_access_enabled:
            drift.append("uniform bucket-level access")
        if config.public_access_prevention != _ENFORCED:
            drift.append("public access prevention")
        return drift

    def _check(self, ctx: GcpContext) -> StepCheck:
        name = self._name(ctx)
        bucket = self._find(ctx, name)
        if bucket is None:
            return self.missing(f"{name} in {ctx.region}: uniform access, no public access")
        record = self._record_of(ctx, bucket)
        # An adopted bucket is used as is: its settings are its owner's.
        return self.found(record, self._drift(bucket) if record.created else None)

    def _create(self, ctx: GcpContext) -> ResourceRecord:
        from google.api_core.exceptions import Conflict

        name = self._name(ctx)
        client = ctx.clients.storage(ctx.project)
        bucket = client.bucket(name)
        bucket.labels = dict(ctx.labels)
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.iam_configuration.public_access_prevention = _ENFORCED
        try:
            client.create_bucket(bucket, project=ctx.project, location=ctx.region)
        except Conflict:
            # Ours from a run whose record was lost, someone else's here, or a stranger's.
            found = self._find(ctx, name)
            if found is None:
                raise _taken(name) from None
            return self._record_of(ctx, found)
        return self._record_of(ctx, bucket)

    def _update(self, ctx: GcpContext, record: ResourceRecord) -> ResourceRecord:
        bucket = ctx.clients.storage(ctx.project).bucket(record.data.get("name", self._name(ctx)))
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.iam_configuration.public_access_prevention = _ENFORCED
        bucket.patch()
        return record

    def _delete(self, ctx: GcpContext, record: ResourceRecord) -> None:
        from google.api_core.exceptions import NotFound

        client = ctx.clients.storage(ctx.project)
        name = str(record.data.get("name") or self._name(ctx))
        try:
            # Every generation: a bucket holding any, live or not, cannot be deleted.
            for blob in client.list_blobs(name, versions=True, retry=retry()):
                try:
                    blob.bucket.blob(blob.name, generation=blob.generation).delete()
                except NotFound:
                    pass
            client.bucket(name).delete()
        except NotFound:
            pass


class BucketRoleStep(RoleBindingStep):
    """roles/storage.objectAdmin for the control-plane account on the bundle bucket: the server
    reads, writes and deletes the pool's bundles with the key in the pool's credentials block,
    and reaches no other bucket. RoleBindingStep's verbs on the bucket's own IAM policy."""

    # A stale etag on a bucket's setIamPolicy is 412 (the project's is 409 ABORTED).
    stale = ("ABORTED", "FAILED_PRECONDITION")
    scope = " on this bucket only"

    def __init__(self, member_account: str) -> None:
        super().__init__(StepIds.BUCKET_ROLE, OBJECT_ADMIN, member_account)
        self.title = f"{OBJECT_ADMIN} on the code-bundle bucket for {member_account}"

    def _bucket(self, ctx: GcpContext) -> Any:
        name = ctx.output(StepIds.BUCKET, "name")
        return ctx.clients.storage(ctx.project).bucket(
            name or bucket_name(ctx.config.pool_name, ctx.project)
        )

    def _resource(self, ctx: GcpContext) -> str:
        return _resource(self._bucket(ctx).name)

    def _read(self, ctx: GcpContext) -> Any:
        return self._bucket(ctx).get_iam_policy(requested_policy_version=3, retry=retry())

    def _write(self, ctx: GcpContext, policy: Any) -> None:
        # No retry on a stale etag here: that means reading again (read_modify_write).
        self._bucket(ctx).set_iam_policy(policy)

    def _prerequisites(self) -> list[str]:
        return [StepIds.BUCKET, StepIds.CONTROL_ACCOUNT]

    def _members_of(self, policy: Any) -> set[str]:
        return _members(policy)

    def _grant(self, policy: Any, member: str) -> bool:
        return _grant(policy, member)

    def _revoke(self, policy: Any, member: str) -> bool:
        return _revoke(policy, member)


# google.api_core.iam.Policy at version 3: `bindings` is a list of {"role", "members", and
# maybe "condition"} dicts; only the unconditional binding of the role is ours to edit.


def _binding(policy: Any) -> dict[str, Any] | None:
    for binding in policy.bindings:
        if binding["role"] == OBJECT_ADMIN and not binding.get("condition"):
            found: dict[str, Any] = binding
            return found
    return None


def _members(policy: Any) -> set[str]:
    binding = _binding(policy)
    return set(binding["members"]) if binding else set()


def _grant(policy: Any, member: str) -> bool:
    binding = _binding(policy)
    if binding is None:
        policy.bindings.append({"role": OBJECT_ADMIN, "members": {member}})
        return True
    if member in binding["members"]:
        return False
    binding["members"] = set(binding["members"]) | {member}
    return True


def _revoke(policy: Any, member: str) -> bool:
    """Remove `member` and its `deleted:` form (what Google makes of it once the account is
    deleted); drop the binding when it is left empty."""
    binding = _binding(policy)
    if binding is None:
        return False
    kept = {m for m in binding["members"] if m != member and not m.startswith(f"deleted:{member}?")}
    if kept == set(binding["members"]):
        return False
    if kept:
        binding["members"] = kept
    else:
        policy.bindings.remove(binding)
    return True


def _taken(name: str) -> InvalidInput:
    return InvalidInput(
        f"Cloud Storage bucket {name} exists in a project these credentials cannot see "
        "(bucket names are global), or they may not read it (storage.buckets.get); provision "
        "this pool under another name"
    )
