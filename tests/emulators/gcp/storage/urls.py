"""Cloud Storage JSON API routes."""

from __future__ import annotations

from tests.emulators.gcp.rest import Route, route
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.storage.responses import StorageResponses

__all__ = ["routes"]

_BUCKETS = r"/storage/v1/b"
_BUCKET = _BUCKETS + r"/(?P<bucket>[^/]+)"
_OBJECT = r"/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)"


def routes(state: GcpState) -> list[Route]:
    r = StorageResponses(state)
    return [
        route("POST", _BUCKETS, r.insert_bucket),
        route("GET", _BUCKETS, r.list_buckets),
        route("GET", _BUCKET, r.get_bucket),
        route("PATCH", _BUCKET, r.patch_bucket),
        route("DELETE", _BUCKET, r.delete_bucket),
        route("GET", _BUCKET + r"/iam", r.get_bucket_iam_policy),
        route("PUT", _BUCKET + r"/iam", r.set_bucket_iam_policy),
        route("GET", _BUCKET + r"/o", r.list_objects),
        route("GET", r"/storage/v1" + _OBJECT, r.get_object),
        route("DELETE", r"/storage/v1" + _OBJECT, r.delete_object),
        route("GET", r"/download/storage/v1" + _OBJECT, r.get_object),
        route("POST", r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o", r.upload_object),
        route("PUT", r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o", r.upload_chunk),
    ]
