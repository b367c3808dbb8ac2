"""S3 step: the private bucket the push-pools server keeps this pool's code bundles in
(push_pools/bundle_storage.py; the pool's `bundle_storage` job variable points at it).

Step verbs follow provisioners/plan.py. A bucket we create has Block Public Access on, default
SSE-S3 encryption and bucket-owner-enforced ownership (no ACLs); drift from those is converged.
A bucket someone else made (same account, no tags of ours) is adopted as is and never deleted.
Teardown empties a bucket of ours (every object version) and deletes it: bundles are
re-uploaded by the next deploy, so nothing in it is the only copy of anything.
"""

from __future__ import annotations

import hashlib
from typing import Any

from provisioners.aws.base import AwsStep, StepIds, owned, tags_of
from provisioners.aws.errors import CLOUD, absent_on, error_code
from provisioners.aws.session import AwsContext
from provisioners.plan import ProvisioningError, ResourceRecord, StepCheck
from push_pools.errors import InvalidInput

__all__ = ["BUNDLE_PREFIX", "BucketStep", "bucket_arn", "bucket_name"]

# Where under the bucket the server writes bundles; the control plane's grant names this prefix.
BUNDLE_PREFIX = "bundles"
GONE = frozenset({"NoSuchBucket", "404", "NotFound"})
_NO_TAGS = frozenset({"NoSuchTagSet"})
_NO_SETTING = frozenset(
    {
        "NoSuchPublicAccessBlockConfiguration",
        "ServerSideEncryptionConfigurationNotFoundError",
        "OwnershipControlsNotFoundError",
    }
)
_BLOCK_ALL = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_SSE_S3 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
_OWNER_ENFORCED = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
# DeleteObjects takes at most 1000 keys per call.
_DELETE_BATCH = 1000


def default_bucket_name(pool: str, account_id: str, region: str) -> str:
    """`pp-<pool>-bundles-<10 hex>`: bucket names are global across all accounts, so the account
    and region go in as a hash (the full ids would pass S3's 63-character limit)."""
    digest = hashlib.sha256(f"{account_id}:{region}".encode()).hexdigest()[:10]
    return f"pp-{pool}-bundles-{digest}"


def bucket_name(ctx: AwsContext) -> str:
    """The bucket this pool uses: the recorded one, an override, or the derived name."""
    recorded = ctx.output(StepIds.BUCKET, "name")
    if recorded:
        return str(recorded)
    if ctx.names.bucket:
        return ctx.names.bucket
    return default_bucket_name(ctx.config.pool_name, ctx.identity.account_id, ctx.region)


def bucket_arn(ctx: AwsContext, name: str) -> str:
    # S3 bucket ARNs carry neither region nor account.
    return f"arn:{ctx.identity.partition}:s3:::{name}"


class BucketStep(AwsStep):
    id = StepIds.BUCKET
    kind = "aws:s3:bucket"

    def __init__(self, override: str | None) -> None:
        # The derived name needs the account id, known only once the step has a context.
        self.override = override
        self.title = f"S3 bucket {override}" if override else "S3 bucket for the code bundles"

    def _name(self, ctx: AwsContext) -> str:
        return self.override or bucket_name(ctx)

    def _exists(self, ctx: AwsContext, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            ctx.client("s3").head_bucket(Bucket=name)
        except ClientError as exc:
            code = error_code(exc)
            if code in GONE:
                return False
            if code in {"403", "AccessDenied", "Forbidden"}:
                raise _taken(name) from None
            raise
        return True

    def _tags(self, ctx: AwsContext, name: str) -> dict[str, str]:
        found = absent_on(_NO_TAGS, ctx.client("s3").get_bucket_tagging, Bucket=name)
        return tags_of(found["TagSet"]) if found else {}

    def _record_of(self, ctx: AwsContext, name: str, created: bool) -> ResourceRecord:
        data = {"name": name, "arn": bucket_arn(ctx, name), "prefix": BUNDLE_PREFIX}
        return self.record(bucket_arn(ctx, name), data, created=created)

    def _check(self, ctx: AwsContext) -> StepCheck:
        name = self._name(ctx)
        if not self._exists(ctx, name):
            return self.missing(f"{name}: private, SSE-S3 encrypted, no ACLs")
        created = owned(ctx, self._tags(ctx, name), f"S3 bucket {name}", adoptable=True)
        drift = self._drift(ctx, name) if created else None
        return self.found(self._record_of(ctx, name, created), drift)

    def _drift(self, ctx: AwsContext, name: str) -> list[str]:
        s3 = ctx.client("s3")
        drift = []
        block = absent_on(_NO_SETTING, s3.get_public_access_block, Bucket=name)
        if not block or block["PublicAccessBlockConfiguration"] != _BLOCK_ALL:
            drift.append("public access block")
        encryption = absent_on(_NO_SETTING, s3.get_bucket_encryption, Bucket=name)
        rules = (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        if not any(
            r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules
        ):
            drift.append("default encryption")
        ownership = absent_on(_NO_SETTING, s3.get_bucket_ownership_controls, Bucket=name)
        if not ownership or ownership["OwnershipControls"] != _OWNER_ENFORCED:
            drift.append("object ownership")
        return drift

    def _create(self, ctx: AwsContext) -> ResourceRecord:
        from botocore.exceptions import ClientError

        name = self._name(ctx)
        s3 = ctx.client("s3")
        where: dict[str, Any] = {}
        if ctx.region != "us-east-1":  # S3 refuses us-east-1 as an explicit location
            where["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
        try:
            s3.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerEnforced", **where)
        except ClientError as exc:
            if error_code(exc) == "BucketAlreadyExists":
                raise _taken(name) from None
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
            # Ours from an earlier run whose record was lost, or someone else's in this account.
            if not owned(ctx, self._tags(ctx, name), f"S3 bucket {name}", adoptable=True):
                return self._record_of(ctx, name, created=False)
        # Tagged first: a crash after this leaves a bucket the next run and the sweep know.
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": ctx.tag_list()})
        self._converge(ctx, name)
        return self._record_of(ctx, name, created=True)

    def _converge(self, ctx: AwsContext, name: str) -> None:
        s3 = ctx.client("s3")
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=_BLOCK_ALL)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=_SSE_S3)
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=_OWNER_ENFORCED)

    def _update(self, ctx: AwsContext, record: ResourceRecord) -> ResourceRecord:
        self._converge(ctx, record.data.get("name", self._name(ctx)))
        return record

    def _delete(self, ctx: AwsContext, record: ResourceRecord) -> None:
        name = record.data.get("name") or self._name(ctx)
        s3 = ctx.client("s3")
        if not self._exists(ctx, name):
            return
        # Every version and delete marker: S3 refuses to delete a bucket holding any.
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=name)
        doomed = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for page in pages
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(doomed), _DELETE_BATCH):
            batch = doomed[start : start + _DELETE_BATCH]
            answer = s3.delete_objects(Bucket=name, Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise ProvisioningError(
                    f"could not empty S3 bucket {name}: {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message', '')}".strip(),
                    step_id=self.id,
                    cloud=CLOUD,
                )
        absent_on(GONE, s3.delete_bucket, Bucket=name)


def _taken(name: str) -> InvalidInput:
    return InvalidInput(
        f"S3 bucket {name} is not this account's to use: its name is taken by another AWS "
        "account (bucket names are global), or these credentials may not read it "
        "(s3:ListBucket); pass --resource-name bucket=NAME with a name of your own"
    )
