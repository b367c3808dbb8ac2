"""The one place Google client errors become push-pools errors, decided by the error's canonical
code (NOT_FOUND, ABORTED, ...), not by its wording, except where Google names an org-policy
constraint.

The code is read from the error itself: a gRPC error carries it, a REST error carries it in the
body's `status` (google.api_core types REST errors by HTTP status alone, so ALREADY_EXISTS and
ABORTED both arrive as a 409 Conflict).

Every step verb and the pre-flight run inside `translate_errors`; steps that expect an error
(a get that finds nothing, a delete of something already gone) use `absent`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from provisioners.gcp.config import CLOUD
from provisioners.plan import ProvisioningError
from push_pools.errors import InvalidInput, PushPoolsError

__all__ = [
    "KEY_CONSTRAINT",
    "NO_CREDENTIALS",
    "absent",
    "key_creation_forbidden",
    "translate_errors",
]

T = TypeVar("T")

NO_CREDENTIALS = (
    "no Google Cloud credentials found: set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
    "key file, or run `gcloud auth application-default login`"
)
KEY_CONSTRAINT = "iam.disableServiceAccountKeyCreation"


def absent(call: Callable[..., T], **kwargs: Any) -> T | None:
    """`call(**kwargs)`, or None when Google answers NOT_FOUND."""
    from google.api_core.exceptions import NotFound

    try:
        return call(**kwargs)
    except NotFound:
        return None


_BY_HTTP_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    # Cloud Storage's JSON API answers a stale etag or failed precondition with 412.
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def canonical_code(exc: BaseException) -> str:
    """The canonical code of a google.api_core error ("UNKNOWN" when it says none)."""
    response = getattr(exc, "response", None)
    try:
        status = response.json()["error"]["status"]  # type: ignore[union-attr]
    except Exception:  # not a REST response, or a body that is not Google's error shape
        status = None
    if isinstance(status, str) and status:
        return status
    grpc_code = getattr(exc, "grpc_status_code", None)
    if grpc_code is not None and hasattr(grpc_code, "name"):
        return str(grpc_code.name)
    return _BY_HTTP_STATUS.get(getattr(exc, "code", None) or 0, "UNKNOWN")


def key_creation_forbidden(exc: BaseException) -> bool:
    """True for the FAILED_PRECONDITION an organisation policy against keys answers."""
    if canonical_code(exc) != "FAILED_PRECONDITION":
        return False
    details = getattr(exc, "details", None) or []
    said = " ".join([str(getattr(exc, "message", exc)), *(str(d) for d in details)])
    return KEY_CONSTRAINT in said


@contextmanager
def translate_errors(step_id: str | None = None) -> Iterator[None]:
    """Turn Google client exceptions raised inside into ProvisioningError or InvalidInput."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from requests import exceptions as http

    try:
        yield
    except PushPoolsError:
        raise
    except auth.DefaultCredentialsError as exc:
        raise InvalidInput(NO_CREDENTIALS) from exc
    except auth.RefreshError as exc:
        raise InvalidInput(
            f"Google rejected the credentials ({_first_line(exc)}): check "
            "GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`"
        ) from exc
    except api.GoogleAPICallError as exc:
        raise _from_call_error(exc, step_id) from exc
    except api.RetryError as exc:
        raise ProvisioningError(
            f"Google Cloud kept failing after retries ({_first_line(exc)}); run again later",
            step_id=step_id,
            cloud=CLOUD,
        ) from exc
    except (auth.TransportError, http.ConnectionError, http.Timeout) as exc:
        raise ProvisioningError(
            f"could not reach Google Cloud ({_first_line(exc)}): check the network and any "
            "proxy settings",
            step_id=step_id,
            cloud=CLOUD,
        ) from exc


def _from_call_error(exc: Any, step_id: str | None) -> PushPoolsError:
    code = canonical_code(exc)
    said = _first_line(exc.message or exc)
    if code == "UNAUTHENTICATED":
        return InvalidInput(
            f"Google rejected the credentials ({said}): check GOOGLE_APPLICATION_CREDENTIALS "
            "or run `gcloud auth application-default login`"
        )
    if code in ("INVALID_ARGUMENT", "OUT_OF_RANGE"):
        return InvalidInput(f"Google Cloud refused the request as invalid ({said})")
    if code == "PERMISSION_DENIED":
        message = (
            f"permission denied ({said}); grant the identity you run push-pools as that "
            "permission (roles/owner, or the roles the README lists), then run again"
        )
    elif code == "RESOURCE_EXHAUSTED":
        message = f"a Google Cloud quota was reached ({said}); wait or raise it, then run again"
    elif code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"):
        message = f"Google Cloud is unavailable ({said}); run again: it resumes where it stopped"
    elif code == "ABORTED":
        message = f"a concurrent change got in the way ({said}); run again"
    else:
        message = f"Google Cloud call failed ({code}: {said})"
    return ProvisioningError(message, step_id=step_id, cloud=CLOUD)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__
