"""Code bundles in a bucket the pool names (`bundle_storage: s3://bucket/prefix` or
`gs://bucket/prefix`) instead of the server's store.

The server writes and reads the objects itself, with its own cloud credentials (boto3's and
Google's default chains), so runs still download through the server with their scoped token and
no run needs rights on the bucket. `AWS_ENDPOINT_URL` and `PUSH_POOLS_GCP_ENDPOINT` point the
clients at emulators in tests. The SDKs are imported only when a bucket is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from push_pools.errors import InvalidInput, PushPoolsError

__all__ = [
    "SCHEMES",
    "VARIABLE",
    "BucketLocation",
    "delete",
    "parse",
    "pool_location",
    "read",
    "variable_schema",
    "write",
]

VARIABLE = "bundle_storage"
SCHEMES = ("s3", "gs")


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


def variable_schema() -> dict[str, Any]:
    """The job variable push pool templates declare for it (read from the pool's default)."""
    return {
        "title": "Bundle Storage",
        "description": (
            "Where the server keeps this pool's code bundles: s3://bucket/prefix or "
            "gs://bucket/prefix, written and read with the server's own credentials; runs "
            "still download through the server. Empty: the server's store. Read from the "
            "pool only, never from a deployment."
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


def write(location: BucketLocation, sha256: str, data: bytes) -> str:
    """Store the bundle; its object URL. InvalidInput, naming the bucket, when the server
    cannot write there."""
    try:
        if location.scheme == "s3":
            _s3().put_object(Bucket=location.bucket, Key=location.key(sha256), Body=data)
        else:
            blob = _gcs().bucket(location.bucket).blob(location.key(sha256))
            blob.upload_from_string(data, content_type="application/gzip")
    except Exception as exc:  # each SDK raises its own kinds; all mean "not written"
        raise InvalidInput(
            f"the server cannot write the code bundle to {location}: {_reason(exc)}; the "
            "bucket must exist and the server's credentials need write access to it "
            f"(or leave the pool's {VARIABLE} empty)"
        ) from None
    return location.url(sha256)


def read(url: str) -> bytes:
    """A stored bundle's bytes; PushPoolsError when the bucket does not give them."""
    location, key = _split(url)
    try:
        if location.scheme == "s3":
            body = _s3().get_object(Bucket=location.bucket, Key=key)["Body"]
            return bytes(body.read())
        return bytes(_gcs().bucket(location.bucket).blob(key).download_as_bytes())
    except Exception as exc:
        raise PushPoolsError(
            f"the server cannot read the code bundle {url}: {_reason(exc)}"
        ) from None


def delete(url: str) -> None:
    """Delete a stored bundle; one that is gone already is fine."""
    location, key = _split(url)
    if location.scheme == "s3":
        _s3().delete_object(Bucket=location.bucket, Key=key)
        return
    from google.api_core import exceptions

    try:
        _gcs().bucket(location.bucket).blob(key).delete()
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


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


def _gcs() -> Any:
    from google.cloud import storage  # type: ignore[attr-defined]  # ships no type hints

    from push_pools import settings

    endpoint = settings.gcp_endpoint()
    options = {"api_endpoint": endpoint} if endpoint else None
    return storage.Client(client_options=options)
