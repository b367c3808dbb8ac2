"""The one place azure-core and azure-identity errors become push-pools errors, decided by
ARM's error code (`{"error": {"code", "message"}}`) and the HTTP status, not by wording.

Every step verb and the pre-flight run inside `translate_errors`; steps that expect an error
(a get that finds nothing, a delete of something already gone) use `absent`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from provisioners.azure.config import CLOUD
from provisioners.plan import ProvisioningError
from push_pools.errors import InvalidInput, PushPoolsError

__all__ = ["no_credentials", "no_secret", "absent", "arm_code", "translate_errors"]

T = TypeVar("T")

_ENV = "AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET"


def _hint() -> str:
    from push_pools.executors.aci.credentials import MAKE_PRINCIPAL_HINT

    return MAKE_PRINCIPAL_HINT


def no_secret() -> str:
    return (
        f"no service principal for the server: pass --client-id, --tenant-id and "
        f"--client-secret, or set {_ENV} (make one with `{_hint()}`), or pass "
        "--managed-identity when the server runs in Azure"
    )


def no_credentials() -> str:
    return (
        f"no Azure credentials found: set {_ENV} (make a service principal with "
        f"`{_hint()}`), or sign in with `az login`"
    )


def arm_code(exc: BaseException) -> str:
    """ARM's error code of an azure-core HttpResponseError ("" when it names none)."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code else ""


def absent(call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """`call(*args, **kwargs)`, or None when ARM answers 404 (the resource or its group)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return call(*args, **kwargs)
    except ResourceNotFoundError:
        return None


@contextmanager
def translate_errors(step_id: str | None = None) -> Iterator[None]:
    """Turn Azure client exceptions raised inside into ProvisioningError or InvalidInput."""
    from azure.core import exceptions as core
    from azure.identity import CredentialUnavailableError

    try:
        yield
    except PushPoolsError:
        raise
    except CredentialUnavailableError as exc:
        raise InvalidInput(no_credentials()) from exc
    except core.ClientAuthenticationError as exc:
        raise InvalidInput(f"Azure rejected the credentials ({_said(exc)}): check {_ENV}") from exc
    except core.HttpResponseError as exc:
        raise _from_response(exc, step_id) from exc
    except (core.ServiceRequestError, core.ServiceResponseError) as exc:
        raise ProvisioningError(
            f"could not reach Azure ({_first_line(exc)}): check the network and any proxy settings",
            step_id=step_id,
            cloud=CLOUD,
        ) from exc


def _from_response(exc: Any, step_id: str | None) -> PushPoolsError:
    code = arm_code(exc)
    status = getattr(exc, "status_code", None) or 0
    said = _said(exc)
    if code in ("AuthorizationFailed", "LinkedAuthorizationFailed") or status == 403:
        message = (
            f"permission denied ({said}); the identity you provision as needs Owner, or "
            "Contributor plus User Access Administrator, on the subscription"
        )
    elif code == "SubscriptionNotFound":
        return InvalidInput(f"{said}: check --subscription / AZURE_SUBSCRIPTION_ID")
    elif status == 400:
        return InvalidInput(f"Azure refused the request as invalid ({said})")
    elif status == 429:
        message = f"Azure throttled the requests ({said}); wait a minute, then run again"
    elif status >= 500:
        message = f"Azure is unavailable ({said}); run again: it resumes where it stopped"
    elif status == 409:
        message = f"a conflicting change got in the way ({said}); run again"
    else:
        message = f"Azure call failed ({said})"
    return ProvisioningError(message, step_id=step_id, cloud=CLOUD)


def _said(exc: Any) -> str:
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if code and message:
        return f"{code}: {_first_line(message)}"
    return _first_line(getattr(exc, "message", None) or exc)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__
