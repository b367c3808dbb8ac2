"""The errors the engine answers with an HTTP status and `{"message": ...}`.

The status classes follow the engine's error kinds (errdefs): docker-py turns a 404 whose message
says "No such image" into ImageNotFound and any other 404 into NotFound, so messages keep the
engine's wording.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DockerApiError",
    "Forbidden",
    "InvalidParameter",
    "NotFound",
    "NotImplementedByEmulator",
    "NotModified",
    "Unauthorized",
]


class DockerApiError(Exception):
    """An engine error: `status` is the HTTP status, `message` the body's message."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotModified(DockerApiError):
    """Start of a running container, stop of a stopped one: 304 with no body."""

    status = 304


class InvalidParameter(DockerApiError):
    status = 400


class Unauthorized(DockerApiError):
    status = 401


class Forbidden(DockerApiError):
    status = 403


class NotFound(DockerApiError):
    status = 404


class Conflict(DockerApiError):
    status = 409


class NotImplementedByEmulator(DockerApiError):
    status = 501
