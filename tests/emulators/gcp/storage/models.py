"""Buckets and objects with the generation numbers and checksums clients verify, and each
bucket's IAM policy and iamConfiguration (uniform bucket-level access, public access
prevention).

An object keeps only its live generation. md5Hash and crc32c are computed as Google does
(base64 of the MD5 digest, base64 of the big-endian CRC32C); an upload whose metadata carries a
checksum that does not match the data is refused.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import google_crc32c  # type: ignore[import-untyped]

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.policy import Binding, Policy

__all__ = ["Bucket", "StorageBackend", "StoredObject", "UploadSession"]

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


@dataclass
class StoredObject:
    bucket: str
    name: str
    data: bytes
    generation: int
    content_type: str
    created: float
    metadata: dict[str, str] = field(default_factory=dict)
    metageneration: int = 1

    @property
    def md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.data).digest()).decode()

    @property
    def crc32c(self) -> str:
        return crc32c_of(self.data)


@dataclass
class Bucket:
    name: str
    project_id: str
    location: str
    storage_class: str
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    objects: dict[str, StoredObject] = field(default_factory=dict)
    metageneration: int = 1
    uniform_access: bool = False
    public_access_prevention: str = "inherited"
    policy: Policy = field(default_factory=Policy)

    def iam_configuration(self) -> dict[str, Any]:
        uniform = {"enabled": self.uniform_access}
        return {
            "uniformBucketLevelAccess": uniform,
            "bucketPolicyOnly": dict(uniform),  # the field's older name, still answered
            "publicAccessPrevention": self.public_access_prevention,
        }

    def configure(self, body: dict[str, Any]) -> None:
        """The parts of an insert or patch body the emulator keeps besides the name."""
        if "labels" in body:
            # A patch merges labels; a null value removes one (Google's patch semantics).
            for key, value in (body.get("labels") or {}).items():
                if value is None:
                    self.labels.pop(key, None)
                else:
                    self.labels[str(key)] = str(value)
        config = body.get("iamConfiguration")
        if isinstance(config, dict):
            uniform = config.get("uniformBucketLevelAccess") or config.get("bucketPolicyOnly")
            if isinstance(uniform, dict) and "enabled" in uniform:
                self.uniform_access = bool(uniform["enabled"])
            prevention = config.get("publicAccessPrevention")
            if prevention is not None:
                if prevention not in ("inherited", "enforced", "unspecified"):
                    raise ApiError(
                        "INVALID_ARGUMENT", f"Invalid publicAccessPrevention: {prevention}"
                    )
                self.public_access_prevention = (
                    "inherited" if prevention == "unspecified" else prevention
                )


@dataclass
class UploadSession:
    upload_id: str
    bucket: str
    metadata: dict[str, Any]
    content_type: str
    preconditions: dict[str, str]
    data: bytearray = field(default_factory=bytearray)


class StorageBackend:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}
        self.uploads: dict[str, UploadSession] = {}
        self._last_generation = 0

    # ------------------------------------------------------------------ buckets

    def insert_bucket(self, project_id: str, body: dict[str, Any]) -> Bucket:
        name = str(body.get("name", ""))
        if not _BUCKET_NAME.match(name) or ".." in name:
            raise ApiError("INVALID_ARGUMENT", f"Invalid bucket name: '{name}'")
        existing = self.buckets.get(name)
        if existing is not None:
            mine = existing.project_id == project_id
            raise ApiError(
                "ALREADY_EXISTS",
                "Your previous request to create the named bucket succeeded and you already own it."
                if mine
                else "The requested bucket name is not available. The bucket namespace is "
                "shared by all users of the system. Please select a different name and try "
                "again.",
            )
        bucket = Bucket(
            name,
            project_id,
            str(body.get("location", "US")).upper(),
            str(body.get("storageClass", "STANDARD")),
            self.clock(),
        )
        bucket.configure(body)
        # A new bucket's policy: the project's owners, editors and viewers by legacy roles.
        bucket.policy.bindings = [
            Binding(
                "roles/storage.legacyBucketOwner",
                [f"projectOwner:{project_id}", f"projectEditor:{project_id}"],
            ),
            Binding("roles/storage.legacyBucketReader", [f"projectViewer:{project_id}"]),
        ]
        self.buckets[name] = bucket
        return bucket

    def patch_bucket(self, bucket: Bucket, body: dict[str, Any]) -> Bucket:
        bucket.configure(body)
        bucket.metageneration += 1
        return bucket

    def get_bucket(self, name: str) -> Bucket:
        bucket = self.buckets.get(name)
        if bucket is None:
            raise ApiError("NOT_FOUND", "The specified bucket does not exist.")
        return bucket

    def delete_bucket(self, bucket: Bucket) -> None:
        if bucket.objects:
            raise ApiError("ABORTED", "The bucket you tried to delete is not empty.")
        del self.buckets[bucket.name]

    # ------------------------------------------------------------------ objects

    def insert_object(
        self,
        bucket: Bucket,
        metadata: dict[str, Any],
        data: bytes,
        content_type: str,
        preconditions: dict[str, str],
    ) -> StoredObject:
        name = str(metadata.get("name", ""))
        if not name or len(name.encode()) > 1024 or "\n" in name or "\r" in name:
            raise ApiError("INVALID_ARGUMENT", f"Invalid object name: '{name}'")
        _check_preconditions(bucket.objects.get(name), preconditions)
        expected_crc = metadata.get("crc32c")
        if expected_crc and expected_crc != crc32c_of(data):
            raise ApiError(
                "INVALID_ARGUMENT",
                f'Provided CRC32C "{expected_crc}" doesn\'t match calculated CRC32C '
                f'"{crc32c_of(data)}".',
            )
        expected_md5 = metadata.get("md5Hash")
        actual_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        if expected_md5 and expected_md5 != actual_md5:
            raise ApiError(
                "INVALID_ARGUMENT",
                f'Provided MD5 hash "{expected_md5}" doesn\'t match calculated MD5 hash '
                f'"{actual_md5}".',
            )
        stored = StoredObject(
            bucket.name,
            name,
            bytes(data),
            self._next_generation(),
            str(metadata.get("contentType") or content_type or "application/octet-stream"),
            self.clock(),
            {str(k): str(v) for k, v in (metadata.get("metadata") or {}).items()},
        )
        bucket.objects[name] = stored
        return stored

    def get_object(
        self, bucket: Bucket, name: str, preconditions: dict[str, str] | None = None
    ) -> StoredObject:
        stored = bucket.objects.get(name)
        wanted = (preconditions or {}).get("generation")
        if stored is None or (wanted and int(wanted) != stored.generation):
            raise ApiError("NOT_FOUND", f"No such object: {bucket.name}/{name}")
        _check_preconditions(stored, preconditions or {})
        return stored

    def delete_object(self, bucket: Bucket, name: str, preconditions: dict[str, str]) -> None:
        self.get_object(bucket, name, preconditions)
        del bucket.objects[name]

    def list_objects(
        self, bucket: Bucket, prefix: str, delimiter: str
    ) -> tuple[list[StoredObject], list[str]]:
        items: list[StoredObject] = []
        prefixes: set[str] = set()
        for name in sorted(bucket.objects):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                continue
            items.append(bucket.objects[name])
        return items, sorted(prefixes)

    # ------------------------------------------------------------------ resumable uploads

    def start_upload(
        self,
        bucket: Bucket,
        metadata: dict[str, Any],
        content_type: str,
        preconditions: dict[str, str],
    ) -> UploadSession:
        session = UploadSession(
            secrets.token_urlsafe(24), bucket.name, metadata, content_type, preconditions
        )
        self.uploads[session.upload_id] = session
        return session

    def find_upload(self, upload_id: str) -> UploadSession:
        session = self.uploads.get(upload_id)
        if session is None:
            raise ApiError("NOT_FOUND", "No such upload session.")
        return session

    def _next_generation(self) -> int:
        # Microseconds since the epoch, like Google's, and strictly increasing.
        self._last_generation = max(self._last_generation + 1, int(self.clock() * 1_000_000))
        return self._last_generation


def crc32c_of(data: bytes) -> str:
    return base64.b64encode(struct.pack(">I", google_crc32c.value(data))).decode()


def _check_preconditions(existing: StoredObject | None, preconditions: dict[str, str]) -> None:
    generation = existing.generation if existing else 0
    failed = False
    if "ifGenerationMatch" in preconditions:
        failed |= int(preconditions["ifGenerationMatch"]) != generation
    if "ifGenerationNotMatch" in preconditions:
        failed |= int(preconditions["ifGenerationNotMatch"]) == generation
    if "ifMetagenerationMatch" in preconditions:
        failed |= existing is None or int(preconditions["ifMetagenerationMatch"]) != (
            existing.metageneration
        )
    if failed:
        raise ApiError(
            "FAILED_PRECONDITION",
            "At least one of the pre-conditions you specified did not hold.",
            http_status=412,
        )
