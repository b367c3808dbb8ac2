"""Google clients and credentials, and the one place Google's exceptions become push-pools errors.

Google's libraries are imported inside functions: the CLI imports the pool-type registry on every
start, and only a server that actually runs Cloud Run pools should pay for them (or need them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from push_pools import settings
from push_pools.errors import (
    AlreadyExists,
    AuthenticationError,
    InvalidInput,
    NotFound,
    PushPoolsError,
    ServerUnreachable,
)
from push_pools.executors.cloud_run.job import BlockCredentials

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
INSTALL_HINT = "pip install 'push-pools[gcp]'"
# Seconds for one HTTP call; a hung connection must not hold a dispatcher thread forever.
CALL_TIMEOUT = 30.0
# Seconds a safe-to-repeat call keeps retrying transient errors (429, 5xx, resets).
READ_RETRY_SECONDS = 30.0


class GcpError(PushPoolsError):
    """A Google Cloud call failed; `code` is Google's canonical code (None when client-side)."""

    cloud = "gcp"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class GcpCredentialsError(GcpError, AuthenticationError):
    """No credentials were found, or Google no longer accepts them."""


class GcpAccessDenied(GcpError):
    """The credentials authenticate, but may not do this."""


class GcpNotFound(GcpError, NotFound):
    pass


class GcpAlreadyExists(GcpError, AlreadyExists):
    pass


class GcpInvalidRequest(GcpError, InvalidInput):
    """Google refused the request itself (a bad field, a wrong state, ...)."""


class GcpFailedPrecondition(GcpInvalidRequest):
    """The resource is not in a state that allows it (e.g. cancelling a finished execution)."""


class GcpUnavailable(GcpError, ServerUnreachable):
    """Throttled, a server error or no connection: try again later."""


class MissingSdk(PushPoolsError):
    pass


def require_sdk() -> None:
    """Google's libraries, or one line saying which extra installs them."""
    try:
        import google.auth  # noqa: F401
        import google.cloud.logging  # noqa: F401
        import google.cloud.run_v2  # noqa: F401
    except ImportError as exc:
        raise MissingSdk(
            f"cloud-run:push pools need Google's client libraries ({exc.name} is missing); "
            f"install them on the server with: {INSTALL_HINT}"
        ) from None


def read_retry() -> Any:
    """The retry policy of calls that are safe to repeat (reads, deletes, creates whose
    ALREADY_EXISTS is expected). run_job never gets one: its caller looks before retrying."""
    from google.api_core import retry

    return retry.Retry(
        predicate=retry.if_transient_error,
        initial=0.25,
        maximum=4.0,
        multiplier=2.0,
        timeout=READ_RETRY_SECONDS,
    )


@dataclass(frozen=True)
class Target:
    """As whom and where Google calls go. `credentials` None: application-default credentials."""

    credentials: BlockCredentials | None
    endpoint: str | None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.credentials.fingerprint() if self.credentials else "-", self.endpoint)


class Connection:
    """Google clients for one Target, created on first use and shared by the executor's threads."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._default_project: str | None = None
        self._clients: dict[str, Any] = {}

    def credentials(self) -> Any:
        with self._lock:
            if self._credentials is None:
                self._credentials, self._default_project = _load(self.target.credentials)
            return self._credentials

    def default_project(self) -> str | None:
        """The block's project, else its key's project, else application-default's."""
        self.credentials()
        return self._default_project

    def run(self, kind: str) -> Any:
        """A Cloud Run v2 client: "jobs", "executions" or "tasks"."""
        client = self._clients.get(kind)
        if client is not None:
            return client
        credentials = self.credentials()
        with self._lock:
            client = self._clients.get(kind)
            if client is None:
                from google.cloud import run_v2

                classes = {
                    "jobs": run_v2.JobsClient,
                    "executions": run_v2.ExecutionsClient,
                    "tasks": run_v2.TasksClient,
                }
                options = {"api_endpoint": self.target.endpoint} if self.target.endpoint else None
                with gcp_errors(f"create a Cloud Run {kind} client"):
                    client = classes[kind](
                        credentials=credentials, transport="rest", client_options=options
                    )
                self._clients[kind] = client
        return client

    def logging(self, project: str) -> Any:
        """A Cloud Logging client over its JSON API: the gapic one has no REST transport."""
        key = f"logging:{project}"
        client = self._clients.get(key)
        if client is not None:
            return client
        credentials = self.credentials()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from google.cloud import logging as cloud_logging

                options = {"api_endpoint": self.target.endpoint} if self.target.endpoint else None
                with gcp_errors("create a Cloud Logging client"):
                    client = cloud_logging.Client(
                        project=project,
                        credentials=credentials,
                        client_options=options,
                        _use_grpc=False,
                    )
                self._clients[key] = client
        return client


class Connections:
    """One Connection per Target, so a deployment's runs share clients and tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, str | None], Connection] = {}

    def get(self, credentials: BlockCredentials | None) -> Connection:
        target = Target(credentials=credentials, endpoint=settings.gcp_endpoint())
        with self._lock:
            connection = self._connections.get(target.key)
            if connection is None:
                connection = self._connections[target.key] = Connection(target)
        return connection


def _load(block: BlockCredentials | None) -> tuple[Any, str | None]:
    require_sdk()
    import google.auth
    from google.auth import exceptions as auth_exceptions
    from google.oauth2 import service_account

    if block is not None and block.service_account_info:
        info = block.service_account_info
        try:
            credentials = service_account.Credentials.from_service_account_info(
                info, scopes=list(SCOPES)
            )
        except (ValueError, KeyError) as exc:
            # Never the key itself in a message: only what is wrong with it.
            raise GcpCredentialsError(
                "the gcp-credentials block's service_account_info is not a usable "
                f"service-account key ({type(exc).__name__}: missing or malformed field); "
                "save the JSON key file downloaded from IAM into the block again"
            ) from None
        return credentials, block.project or info.get("project_id")
    try:
        credentials, project = google.auth.default(scopes=list(SCOPES))
    except auth_exceptions.DefaultCredentialsError:
        raise GcpCredentialsError(
            "no Google Cloud credentials: set the job variable 'credentials' to a "
            "gcp-credentials block, or give the server application-default credentials "
            "(GOOGLE_APPLICATION_CREDENTIALS=<key file>, or `gcloud auth application-default "
            "login`)"
        ) from None
    return credentials, (block.project if block else None) or project


# Canonical codes (google.rpc.Code) by what they mean for a caller. Over REST, Google's client
# libraries pick the exception class from the HTTP status alone (FAILED_PRECONDITION and
# INVALID_ARGUMENT are both a 400 BadRequest), so the code in the error body decides.
_CREDENTIAL_CODES = frozenset({"UNAUTHENTICATED"})
_ACCESS_CODES = frozenset({"PERMISSION_DENIED"})
_TRANSIENT_CODES = frozenset(
    {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED", "UNKNOWN"}
)


@contextmanager
def gcp_errors(action: str) -> Iterator[None]:
    """Translate what Google's libraries raise while doing `action` into push-pools errors.

    `action` completes "could not ...", e.g. "start the Cloud Run job".
    """
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        yield
    except PushPoolsError:
        raise
    except api.GoogleAPICallError as exc:
        raise _from_call_error(exc, action) from exc
    except (api.RetryError, auth.TransportError) as exc:
        raise GcpUnavailable(
            f"could not {action}: cannot reach Google Cloud ({exc}); retrying later"
        ) from exc
    except auth.RefreshError as exc:
        raise GcpCredentialsError(
            f"could not {action}: Google did not issue a token for the credentials ({exc}); "
            "they no longer authenticate: update the gcp-credentials block (or the server's "
            "application-default credentials)"
        ) from exc
    except auth.DefaultCredentialsError as exc:
        raise GcpCredentialsError(f"could not {action}: {exc}") from exc
    except OSError as exc:  # requests' connection errors and timeouts are OSErrors
        raise GcpUnavailable(f"could not {action}: cannot reach Google Cloud ({exc})") from exc


def _from_call_error(exc: Any, action: str) -> GcpError:
    code = canonical_code(exc)
    message = str(getattr(exc, "message", None) or exc)
    detail = f"{code}: {message}" if code else message
    status = int(getattr(exc, "code", 0) or 0)
    if code in _CREDENTIAL_CODES or status == 401:
        return GcpCredentialsError(
            f"could not {action}: Google rejected the credentials ({detail}); they no longer "
            "authenticate: update the gcp-credentials block (or the server's "
            "application-default credentials)",
            code=code,
        )
    if code in _ACCESS_CODES or status == 403:
        return GcpAccessDenied(
            f"could not {action}: the Google Cloud credentials are not allowed to ({detail}); "
            "grant their service account the missing role (Cloud Run jobs: roles/run.developer, "
            "and roles/iam.serviceAccountUser on the job's service account)",
            code=code,
        )
    if code == "NOT_FOUND" or status == 404:
        return GcpNotFound(f"could not {action}: {detail}", code=code)
    if code == "ALREADY_EXISTS":
        return GcpAlreadyExists(f"could not {action}: {detail}", code=code)
    if code == "FAILED_PRECONDITION":
        return GcpFailedPrecondition(f"could not {action}: {detail}", code=code)
    if code in _TRANSIENT_CODES or status == 429 or status >= 500:
        return GcpUnavailable(
            f"could not {action}: Google Cloud is throttling or unavailable ({detail}); "
            "retrying later",
            code=code,
        )
    if 400 <= status < 500:
        return GcpInvalidRequest(f"could not {action}: {detail}", code=code)
    return GcpError(f"could not {action}: {detail}", code=code)


def canonical_code(exc: Any) -> str | None:
    """Google's canonical code of a failed call ("NOT_FOUND", ...), from its body if it has one."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            status = response.json().get("error", {}).get("status")
        except Exception:  # not JSON, or not Google's error shape
            status = None
        if status:
            return str(status)
    grpc_code = getattr(exc, "grpc_status_code", None)
    if grpc_code is not None:
        return str(getattr(grpc_code, "name", grpc_code))
    return None
