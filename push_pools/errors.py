"""The few exceptions push-pools raises; each message says what to do next.

The CLI prints them without a traceback and exits non-zero; the API maps them to HTTP codes.
"""

from __future__ import annotations


class PushPoolsError(Exception):
    """Base class: a problem the user can act on."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PushPoolsError):
    status_code = 404


class AlreadyExists(PushPoolsError):
    status_code = 409


class InvalidInput(PushPoolsError):
    """Bad input: job variables, cron strings, templates, parameters, names."""

    status_code = 422


class RunSetupError(PushPoolsError):
    """A run's environment could not be made (e.g. its dependencies), so its code never ran:
    the engine reports the run Crashed, as an infrastructure failure, not Failed."""


class Conflict(PushPoolsError):
    """The request is valid but the object is in a state that forbids it."""

    status_code = 409


class ServerUnreachable(PushPoolsError):
    status_code = 503


class AuthenticationError(PushPoolsError):
    status_code = 401


class ImageError(PushPoolsError):
    """An image could not be built or pushed, or no Docker engine answers; the message carries
    the engine's or registry's own words."""

    status_code = 422
