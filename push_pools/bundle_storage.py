"""Code bundles in a bucket the pool names (`bundle_storage: s3://bucket/prefix` or
`gs://bucket/prefix`) instead of the server's store.

The server writes and reads the objects itself, as the pool's own cloud identity: the
credentials block in the pool's credential slot (`aws_credentials` or `credentials`), its
region and its endpoint, which is what `--provision-infra` granted rights on the bucket; a pool
without a block uses the server's default chain (boto3's, Google's application-default). Runs
still download through the server with their scoped token, so no run needs rights on the
bucket. The SDKs are imported only when a bucket is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from push_pools.errors import InvalidInput, PushPoolsError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from push_pools.store.tables import WorkPool

__all__ = [
    "SCHEMES",
    "VARIABLE",
    "BucketAccess",
    "BucketLocation",
    "access_for_pool",
    "access_for_url",
    "check_pool_bucket",
    "delete",
    "exists",
    "parse",
    "pool_location",
    "read",
    "variable_schema",
    "write",
]

VARIABLE = "bundle_storage"
SCHEMES = ("s3", "gs")
# Seconds per bucket call: a deploy waits on them, and pruning runs in the scheduler's loop,
# so an unreachable endpoint must fail soon instead of after botocore's minutes of retries.
TIMEOUT = 30


@dataclass(frozen=True)
class BucketLocation:
    scheme: str
    bucket: str
    prefix: str  # "" or ending in "/"

    def key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256}.tar.gz"

    def url(self, sha256: str) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key(sha256)}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class BucketAccess:
    """As whom and where the server reaches a pool's bucket. Empty: the default chain."""

    credentials: dict[str, Any] = field(default_factory=dict)  # the resolved block's fields
    region: str | None = None
    endpoint_url: str | None = None


def variable_schema() -> dict[str, Any]:
    """The job variable push pool templates declare for it (read from the pool's default)."""
    return {
        "title": "Bundle Storage",
        "description": (
            "Where the server keeps this pool's code bundles: s3://bucket/prefix or "
            "gs://bucket/prefix, written and read with the pool's credentials block (else "
            "the server's own credentials); runs still download through the server. Empty: "
            "the server's store. Read from the pool only, never from a deployment."
        ),
        "type": "string",
        "default": "",
    }


def parse(url: str) -> BucketLocation:
    """InvalidInput when `url` is not s3://bucket[/prefix] or gs://bucket[/prefix]."""
    scheme, sep, rest = url.strip().partition("://")
    bucket, _, prefix = rest.partition("/")
    if not sep or scheme not in SCHEMES:
        raise InvalidInput(
            f"{VARIABLE} {url!r} is not a bucket URL: use s3://bucket/prefix (Amazon S3) or "
            "gs://bucket/prefix (Google Cloud Storage)"
        )
    if not bucket:
        raise InvalidInput(f"{VARIABLE} {url!r} names no bucket: {scheme}://bucket/prefix")
    prefix = prefix.strip("/")
    return BucketLocation(scheme, bucket, prefix + "/" if prefix else "")


def pool_location(base_job_template: Any) -> BucketLocation | None:
    """The bucket a pool's template names as its `bundle_storage` default, or None."""
    from push_pools import templates

    if not isinstance(base_job_template, dict):
        return None
    url = templates.default_values(base_job_template).get(VARIABLE)
    if not isinstance(url, str) or not url.strip():
        return None
    return parse(url)


def access_for_pool(session: Session, pool: WorkPool) -> BucketAccess:
    """The pool's credentials block (decrypted), region and endpoint, from its template's
    defaults as a run of the pool would get them; InvalidInput when the block cannot be used."""
    from push_pools import pool_types, templates
    from push_pools.blocks import SecretBox
    from push_pools.store.blocks import block_resolver

    kind = pool_types.get(pool.type)
    box: Any
    try:
        box = SecretBox.from_environment(create=False)
    except PushPoolsError as exc:
        box = exc  # raised by the resolver only if the template names a block
    try:
        config = templates.render_job_configuration(
            pool.base_job_template,
            {},
            block_resolver(session, box),
            credential_slots=kind.credential_slots,
            pool_type=kind.name,
        )
    except PushPoolsError as exc:
        raise InvalidInput(
            f"the server cannot reach work pool {pool.name!r}'s {VARIABLE} as the pool: "
            f"{exc.message}"
        ) from None
    slots = [config.get(slot) for slot in kind.credential_slots]
    credentials = next((value for value in slots if isinstance(value, dict)), {})
    return BucketAccess(
        credentials=credentials,
        region=_text(config.get("region")) or _text(credentials.get("region_name")),
        endpoint_url=_text(config.get("endpoint_url")),
    )


def access_for_url(session: Session, url: str) -> BucketAccess:
    """The access of the pool whose `bundle_storage` is the bucket of `url` (a stored bundle's
    object); the default chain when no pool names that bucket any more."""
    from sqlalchemy import select

    from push_pools.store.tables import WorkPool

    wanted = parse(url)
    live = select(WorkPool).where(WorkPool.deleted.is_(False)).order_by(WorkPool.created)
    for pool in session.scalars(live):
        try:
            location = pool_location(pool.base_job_template)
        except InvalidInput:
            continue
        if location is not None and (location.scheme, location.bucket) == (
            wanted.scheme,
            wanted.bucket,
        ):
            return access_for_pool(session, pool)
    return BucketAccess()


# The bucket scheme a pool type's credentials block can reach; other types (ACI: no block
# reaches S3 or Cloud Storage) use the server's own credentials for either.
_SCHEME_OF_TYPE = {"ecs:push": "s3", "cloud-run:push": "gs"}
_CLOUD_OF_SCHEME = {"s3": "an Amazon S3", "gs": "a Google Cloud Storage"}


def check_pool_bucket(base_job_template: Any, pool_type: str) -> BucketLocation | None:
    """The pool's bucket; InvalidInput for a URL no bucket could have, or a bucket of another
    cloud than the pool's credentials reach (its runs' region and block are that cloud's)."""
    location = pool_location(base_job_template)
    wanted = _SCHEME_OF_TYPE.get(pool_type)
    if location is not None and wanted is not None and location.scheme != wanted:
        raise InvalidInput(
            f"{VARIABLE} {str(location)!r} is {_CLOUD_OF_SCHEME[location.scheme]} bucket, but "
            f"a {pool_type} pool's credentials are for {_CLOUD_OF_SCHEME[wanted]} one: use "
            f"{wanted}://bucket/prefix, or leave it empty for the server's store"
        )
    return location


def write(location: BucketLocation, sha256: str, data: bytes, access: BucketAccess) -> str:
    """Store the bundle; its object URL. InvalidInput, naming the bucket, when the server
    cannot write there."""
    try:
        if location.scheme == "s3":
            _s3(access).put_object(Bucket=location.bucket, Key=location.key(sha256), Body=data)
        else:
            blob = _gcs(access).bucket(location.bucket).blob(location.key(sha256))
            blob.upload_from_string(data, content_type="application/gzip", timeout=TIMEOUT)
    except Exception as exc:  # each SDK raises its own kinds; all mean "not written"
        who = "the pool's credentials block" if access.credentials else "the server's credentials"
        raise InvalidInput(
            f"the server cannot write the code bundle to {location}: {_reason(exc)}; the "
            f"bucket must exist and {who} need write access to it "
            f"(or leave the pool's {VARIABLE} empty)"
        ) from None
    return location.url(sha256)


def exists(url: str, access: BucketAccess) -> bool:
    """Whether the object is there and readable as `access`; False on any doubt, so the
    caller uploads it again (a write that cannot happen then says why)."""
    location, key = _split(url)
    try:
        if location.scheme == "s3":
            _s3(access).head_object(Bucket=location.bucket, Key=key)
            return True
        return bool(_gcs(access).bucket(location.bucket).blob(key).exists(timeout=TIMEOUT))
    except Exception:  # each SDK raises its own kinds; all mean "not usable"
        return False


def read(url: str, access: BucketAccess) -> bytes:
    """A stored bundle's bytes; PushPoolsError when the bucket does not give them."""
    location, key = _split(url)
    try:
        if location.scheme == "s3":
            body = _s3(access).get_object(Bucket=location.bucket, Key=key)["Body"]
            return bytes(body.read())
        blob = _gcs(access).bucket(location.bucket).blob(key)
        return bytes(blob.download_as_bytes(timeout=TIMEOUT))
    except Exception as exc:
        raise PushPoolsError(
            f"the server cannot read the code bundle {url}: {_reason(exc)}; deploy the "
            "project again to upload it where its pool reads it"
        ) from None


def delete(url: str, access: BucketAccess) -> None:
    """Delete a stored bundle; one that is gone already is fine."""
    location, key = _split(url)
    if location.scheme == "s3":
        _s3(access).delete_object(Bucket=location.bucket, Key=key)
        return
    from google.api_core import exceptions

    try:
        _gcs(access).bucket(location.bucket).blob(key).delete(timeout=TIMEOUT)
    except exceptions.NotFound:
        pass


def _split(url: str) -> tuple[BucketLocation, str]:
    location = parse(url)
    key = location.prefix.rstrip("/")
    return BucketLocation(location.scheme, location.bucket, ""), key


def _reason(exc: Exception) -> str:
    # botocore's ClientError and google's API errors both say the service's code and message.
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _s3(access: BucketAccess) -> Any:
    import boto3

    block = access.credentials
    session = boto3.Session(
        aws_access_key_id=_text(block.get("aws_access_key_id")),
        aws_secret_access_key=_text(block.get("aws_secret_access_key")),
        aws_session_token=_text(block.get("aws_session_token")),
        profile_name=_text(block.get("profile_name")),
        region_name=access.region,
    )
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=TIMEOUT, retries={"total_max_attempts": 2})
    # No endpoint_url: boto3 reads AWS_ENDPOINT_URL itself.
    return session.client("s3", endpoint_url=access.endpoint_url, config=config)


def _gcs(access: BucketAccess) -> Any:
    from google.cloud import storage  # type: ignore[attr-defined]  # ships no type hints

    from push_pools import settings

    endpoint = settings.gcp_endpoint()
    options = {"api_endpoint": endpoint} if endpoint else None
    info = access.credentials.get("service_account_info")
    if not isinstance(info, dict):
        return storage.Client(client_options=options)  # application-default credentials
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    project = _text(access.credentials.get("project")) or _text(info.get("project_id"))
    return storage.Client(project=project, credentials=credentials, client_options=options)
