"""Cloud Storage JSON API on the wire: metadata as JSON, media as bytes.

Bucket IAM policies (`GET`/`PUT .../b/BUCKET/iam`) are read-modify-write with an etag, like
the project's; a bucket's policy grants on that bucket only (`_bucket` checks it with the
project's).

Uploads: `uploadType=media` (raw body), `multipart` (multipart/related: JSON metadata, then
the data) and `resumable` (a session URL in `Location`, then PUTs with Content-Range answered
308 until the last byte). Downloads (`alt=media`) send `X-Goog-Hash` (crc32c and md5) so the
client's checksum validation runs; a `Range` header gets a 206.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.policy import Policy, validated_bindings
from tests.emulators.gcp.rest import Request, Response
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.storage.models import Bucket, StoredObject
from tests.emulators.gcp.wire import page, rfc3339

__all__ = ["StorageResponses"]

_PRECONDITIONS = (
    "generation",
    "ifGenerationMatch",
    "ifGenerationNotMatch",
    "ifMetagenerationMatch",
)
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class StorageResponses:
    def __init__(self, state: GcpState) -> None:
        self.state = state
        self.backend = state.storage

    # ------------------------------------------------------------------ buckets

    def insert_bucket(self, request: Request) -> dict[str, Any]:
        ref = request.arg("project")
        if not ref:
            raise ApiError("INVALID_ARGUMENT", "Required parameter: project")
        project = self.state.project_for(request.principal, ref, "storage.buckets.create")
        bucket = self.backend.insert_bucket(project.project_id, request.json())
        return self._bucket_json(bucket)

    def list_buckets(self, request: Request) -> dict[str, Any]:
        ref = request.arg("project")
        if not ref:
            raise ApiError("INVALID_ARGUMENT", "Required parameter: project")
        project = self.state.project_for(request.principal, ref, "storage.buckets.list")
        buckets = sorted(
            (b for b in self.backend.buckets.values() if b.project_id == project.project_id),
            key=lambda b: b.name,
        )
        prefix = request.arg("prefix")
        buckets = [b for b in buckets if b.name.startswith(prefix)]
        chunk, token = page(buckets, request.arg("maxResults"), request.arg("pageToken"))
        body: dict[str, Any] = {
            "kind": "storage#buckets",
            "items": [self._bucket_json(b) for b in chunk],
        }
        if token:
            body["nextPageToken"] = token
        return body

    def get_bucket(self, request: Request) -> dict[str, Any]:
        return self._bucket_json(self._bucket(request, "storage.buckets.get"))

    def patch_bucket(self, request: Request) -> dict[str, Any]:
        bucket = self._bucket(request, "storage.buckets.update")
        return self._bucket_json(self.backend.patch_bucket(bucket, request.json()))

    def get_bucket_iam_policy(self, request: Request) -> dict[str, Any]:
        bucket = self._bucket(request, "storage.buckets.getIamPolicy")
        return self._policy_json(bucket)

    def set_bucket_iam_policy(self, request: Request) -> dict[str, Any]:
        bucket = self._bucket(request, "storage.buckets.setIamPolicy")
        body = request.json()
        etag_text = str(body.get("etag", ""))
        try:
            etag = base64.b64decode(etag_text, validate=True) if etag_text else None
        except (ValueError, binascii.Error) as exc:
            raise ApiError("INVALID_ARGUMENT", "Invalid etag.") from exc
        bindings = validated_bindings(
            Policy.bindings_from_json(body.get("bindings", [])), self.state.iam.validate_member
        )
        try:
            bucket.policy.replace(bindings, etag, int(body.get("version", 1) or 1))
        except ApiError as exc:
            if exc.code != "ABORTED":
                raise
            # Cloud Storage says a stale etag with 412, where Resource Manager says 409.
            raise ApiError(
                "FAILED_PRECONDITION",
                "At least one of the pre-conditions you specified did not hold.",
                http_status=412,
            ) from None
        return self._policy_json(bucket)

    def delete_bucket(self, request: Request) -> Response:
        self.backend.delete_bucket(self._bucket(request, "storage.buckets.delete"))
        return Response(b"", 204)

    # ------------------------------------------------------------------ objects

    def upload_object(self, request: Request) -> Response | dict[str, Any]:
        bucket = self._bucket(request, "storage.objects.create")
        kind = request.arg("uploadType")
        content_type = request.headers.get("Content-Type", "")
        conditions = self._preconditions(request)
        if kind == "media":
            metadata = {"name": request.arg("name")}
            stored = self.backend.insert_object(
                bucket, metadata, request.body, content_type, conditions
            )
        elif kind == "multipart":
            metadata, data, media_type = _multipart(content_type, request.body)
            if request.arg("name"):
                metadata.setdefault("name", request.arg("name"))
            stored = self.backend.insert_object(bucket, metadata, data, media_type, conditions)
        elif kind == "resumable":
            metadata = request.json()
            if request.arg("name"):
                metadata.setdefault("name", request.arg("name"))
            session = self.backend.start_upload(
                bucket, metadata, request.headers.get("X-Upload-Content-Type", ""), conditions
            )
            host = request.headers.get("Host", "127.0.0.1")
            location = (
                f"http://{host}/upload/storage/v1/b/{bucket.name}/o"
                f"?uploadType=resumable&upload_id={session.upload_id}"
            )
            return Response(
                b"", 200, {"Location": location, "X-GUploader-UploadID": session.upload_id}
            )
        else:
            raise ApiError("INVALID_ARGUMENT", f"Unsupported uploadType: {kind}")
        return self._object_json(stored)

    def upload_chunk(self, request: Request) -> Response | dict[str, Any]:
        session = self.backend.find_upload(request.arg("upload_id"))
        bucket = self._bucket(request, "storage.objects.create")
        header = request.headers.get("Content-Range")
        if header is None:
            # No range: this body is all that is left of the data.
            have, size = len(session.data), len(request.body)
            header = f"bytes {have}-{have + size - 1}/{have + size}" if size else f"bytes */{have}"
        found = _CONTENT_RANGE.match(header)
        if found is None:
            raise ApiError("INVALID_ARGUMENT", "Invalid Content-Range header.")
        first, _last, total = found.groups()
        if first is not None:
            if int(first) != len(session.data):
                # Bytes the server already has are not taken twice: answer where we are.
                return _incomplete(len(session.data))
            session.data.extend(request.body)
        if total == "*" or len(session.data) < int(total):
            return _incomplete(len(session.data))
        del self.backend.uploads[session.upload_id]
        stored = self.backend.insert_object(
            bucket,
            session.metadata,
            bytes(session.data),
            session.content_type,
            session.preconditions,
        )
        return self._object_json(stored)

    def get_object(self, request: Request) -> Response | dict[str, Any]:
        bucket = self._bucket(request, "storage.objects.get")
        stored = self.backend.get_object(
            bucket, request.params["object"], self._preconditions(request)
        )
        if request.arg("alt") == "media" or request.path.startswith("/download/"):
            return _media(stored, request.headers.get("Range", ""))
        return self._object_json(stored)

    def list_objects(self, request: Request) -> dict[str, Any]:
        bucket = self._bucket(request, "storage.objects.list")
        items, prefixes = self.backend.list_objects(
            bucket, request.arg("prefix"), request.arg("delimiter")
        )
        chunk, token = page(items, request.arg("maxResults"), request.arg("pageToken"))
        body: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [self._object_json(o) for o in chunk],
        }
        if prefixes:
            body["prefixes"] = prefixes
        if token:
            body["nextPageToken"] = token
        return body

    def delete_object(self, request: Request) -> Response:
        bucket = self._bucket(request, "storage.objects.delete")
        self.backend.delete_object(bucket, request.params["object"], self._preconditions(request))
        return Response(b"", 204)

    # ------------------------------------------------------------------ helpers

    def _bucket(self, request: Request, permission: str) -> Bucket:
        bucket = self.backend.get_bucket(request.params["bucket"])
        if not self.state.access.allowed(
            request.principal, permission, bucket.project_id, bucket.policy
        ):
            what = "bucket" if permission.startswith("storage.buckets") else "object"
            raise ApiError(
                "PERMISSION_DENIED",
                f"{request.principal} does not have {permission} access to the Google Cloud "
                f"Storage {what}. Permission '{permission}' denied on resource (or it may not "
                "exist).",
            )
        return bucket

    @staticmethod
    def _preconditions(request: Request) -> dict[str, str]:
        return {k: request.arg(k) for k in _PRECONDITIONS if request.arg(k)}

    def _bucket_json(self, bucket: Bucket) -> dict[str, Any]:
        project = self.state.projects.projects.get(bucket.project_id)
        return {
            "kind": "storage#bucket",
            "id": bucket.name,
            "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket.name}",
            "projectNumber": project.number if project else "0",
            "name": bucket.name,
            "timeCreated": rfc3339(bucket.created),
            "updated": rfc3339(bucket.created),
            "metageneration": str(bucket.metageneration),
            "location": bucket.location,
            "locationType": "region" if "-" in bucket.location else "multi-region",
            "storageClass": bucket.storage_class,
            "etag": "CAE=",
            "labels": dict(bucket.labels),
            "iamConfiguration": bucket.iam_configuration(),
        }

    @staticmethod
    def _policy_json(bucket: Bucket) -> dict[str, Any]:
        return {
            "kind": "storage#policy",
            "resourceId": f"projects/_/buckets/{bucket.name}",
            **bucket.policy.to_json(),
        }

    def _object_json(self, stored: StoredObject) -> dict[str, Any]:
        generation = str(stored.generation)
        link = f"https://www.googleapis.com/storage/v1/b/{stored.bucket}/o/{stored.name}"
        return {
            "kind": "storage#object",
            "id": f"{stored.bucket}/{stored.name}/{generation}",
            "selfLink": link,
            "mediaLink": f"https://www.googleapis.com/download/storage/v1/b/{stored.bucket}/o/"
            f"{stored.name}?generation={generation}&alt=media",
            "name": stored.name,
            "bucket": stored.bucket,
            "generation": generation,
            "metageneration": str(stored.metageneration),
            "contentType": stored.content_type,
            "storageClass": "STANDARD",
            "size": str(len(stored.data)),
            "md5Hash": stored.md5,
            "crc32c": stored.crc32c,
            "etag": f"C{generation[-8:]}EAE=",
            "timeCreated": rfc3339(stored.created),
            "updated": rfc3339(stored.created),
            "timeStorageClassUpdated": rfc3339(stored.created),
            **({"metadata": dict(stored.metadata)} if stored.metadata else {}),
        }


def _incomplete(have: int) -> Response:
    headers = {"Range": f"bytes=0-{have - 1}"} if have else {}
    return Response(b"", 308, headers)


def _media(stored: StoredObject, range_header: str) -> Response:
    headers = {
        "X-Goog-Hash": f"crc32c={stored.crc32c},md5={stored.md5}",
        "X-Goog-Generation": str(stored.generation),
        "X-Goog-Metageneration": str(stored.metageneration),
        "X-Goog-Stored-Content-Length": str(len(stored.data)),
        "X-Goog-Stored-Content-Encoding": "identity",
        "ETag": f'"{stored.md5}"',
    }
    found = _RANGE.match(range_header.strip()) if range_header else None
    if found is None:
        return Response(stored.data, 200, headers, stored.content_type)
    size = len(stored.data)
    start_text, end_text = found.groups()
    if start_text:
        start = int(start_text)
        end = min(int(end_text), size - 1) if end_text else size - 1
    else:
        start, end = max(0, size - int(end_text or 0)), size - 1
    if start >= size and size:
        raise ApiError("OUT_OF_RANGE", "The requested range cannot be satisfied.", http_status=416)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(stored.data[start : end + 1], 206, headers, stored.content_type)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes, str]:
    """The metadata, data and data content type of a multipart/related upload."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or found is None:
        raise ApiError("INVALID_ARGUMENT", "A multipart upload needs multipart/related.")
    delimiter = b"--" + found.group(1).encode()
    parts = [p for p in body.split(delimiter)[1:] if not p.startswith(b"--")]
    if len(parts) != 2:
        raise ApiError("INVALID_ARGUMENT", "A multipart upload has exactly two parts.")
    sections = []
    for part in parts:
        head, _, content = part.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = {}
        for line in head.decode(errors="replace").strip().splitlines():
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        sections.append((headers, content))
    try:
        metadata = json.loads(sections[0][1] or b"{}")
    except ValueError as exc:
        raise ApiError("INVALID_ARGUMENT", "The metadata part is not JSON.") from exc
    return metadata, sections[1][1], sections[1][0].get("content-type", "")
