"""Azure clients for the ACI executor, and the one place Azure's exceptions become push-pools
errors.

Azure's libraries are imported inside functions: the CLI imports the pool-type registry on every
start, and only a server that runs ACI pools should pay for them (or need them).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
from push_pools.executors.aci import credentials
from push_pools.executors.aci.job import BlockCredentials

__all__ = [
    "AzureAccessDenied",
    "AzureCredentialsError",
    "AzureError",
    "AzureInvalidRequest",
    "AzureNotFound",
    "AzureUnavailable",
    "Connection",
    "Connections",
    "azure_errors",
]

# Transient 5xx, 429 and dropped connections are retried by azure-core's RetryPolicy, bounded so
# that a dispatcher thread is never held for minutes: 3 retries, at most 4 s apart.
RETRY_SETTINGS: dict[str, Any] = {
    "retry_total": 3,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 4,
    "connection_timeout": 10,
    "read_timeout": 30,
}
# Seconds between polls of a provider registration, and how long to wait for one.
REGISTRATION_POLL_SECONDS = 0.5
REGISTRATION_WAIT_SECONDS = 60.0
NAMESPACE = "Microsoft.ContainerInstance"

NO_CREDENTIALS = (
    "no Azure credentials: set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for the "
    "server (or give it a managed identity), or set the job variable 'aci_credentials' to an "
    "azure-credentials block; a service principal is made with: " + credentials.MAKE_PRINCIPAL_HINT
)


class AzureError(PushPoolsError):
    """An Azure call failed; `code` is ARM's error code (None when client-side)."""

    cloud = "azure"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AzureCredentialsError(AzureError, AuthenticationError):
    """No credentials were found, or Azure no longer accepts them."""


class AzureAccessDenied(AzureError):
    """The credentials authenticate, but may not do this."""


class AzureNotFound(AzureError, NotFound):
    pass


class AzureAlreadyExists(AzureError, AlreadyExists):
    pass


class AzureInvalidRequest(AzureError, InvalidInput):
    """Azure refused the request itself (a bad field, a limit, a wrong state)."""


class AzureUnavailable(AzureError, ServerUnreachable):
    """Throttled, a server error or no connection, after the SDK's retries: try again later."""


class Connection:
    """Azure clients for one set of credentials, created on first use and shared by the
    executor's threads."""

    def __init__(self, block: BlockCredentials | None) -> None:
        self.block = block
        self._lock = threading.Lock()
        self._credential: Any = None
        self._clients: dict[tuple[str, str], Any] = {}

    def credential(self) -> Any:
        with self._lock:
            if self._credential is None:
                self._credential = credentials.credential(
                    self.block.as_block() if self.block else None
                )
            return self._credential

    def default_subscription(self) -> str | None:
        return self.block.subscription_id if self.block else None

    def aci(self, subscription_id: str) -> Any:
        """A ContainerInstanceManagementClient for the subscription."""
        return self._client("aci", subscription_id)

    def resources(self, subscription_id: str) -> Any:
        """A ResourceManagementClient (resource groups, providers) for the subscription."""
        return self._client("resources", subscription_id)

    def _client(self, kind: str, subscription_id: str) -> Any:
        key = (kind, subscription_id)
        client = self._clients.get(key)
        if client is not None:
            return client
        credential = self.credential()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if kind == "aci":
                    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

                    cls: Any = ContainerInstanceManagementClient
                else:
                    from azure.mgmt.resource.resources import ResourceManagementClient

                    cls = ResourceManagementClient
                client = cls(
                    credential, subscription_id, **credentials.client_kwargs(), **RETRY_SETTINGS
                )
                self._clients[key] = client
        return client

    def close(self) -> None:
        """Close the clients' HTTP sessions and the credential's."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            credential, self._credential = self._credential, None
        for closable in [*clients, credential]:
            close = getattr(closable, "close", None)
            if close is not None:
                close()


class Connections:
    """One Connection per credentials (and endpoint), so runs share clients and tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, str | None], Connection] = {}

    def close(self) -> None:
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.close()

    def get(self, block: BlockCredentials | None) -> Connection:
        key = (block.fingerprint() if block else "-", settings.azure_endpoint())
        with self._lock:
            connection = self._connections.get(key)
            if connection is None:
                connection = self._connections[key] = Connection(block)
        return connection


def require_sdk() -> None:
    """Azure's libraries, or one line saying which extra installs them."""
    credentials.require_sdk()
    try:
        import azure.mgmt.containerinstance  # noqa: F401
        import azure.mgmt.resource  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"azure-container-instance:push pools need Azure's client libraries ({exc.name} is "
            f"missing); install them on the server with: {credentials.INSTALL_HINT}"
        ) from None


# --------------------------------------------------------------------------- errors

_ACTION = re.compile(r"perform action(?:\(s\))? '([^']+)'")
_LINKED_SCOPE = re.compile(r"linked scope\(s\) '([^']+)'")
_SCOPE = re.compile(r"over scope '([^']+)'")
_RESOURCE_GROUP = re.compile(r"/resourceGroups/([^/]+)", re.IGNORECASE)
_TRANSIENT_CODES = frozenset({"ServiceUnavailable", "InternalServerError", "TooManyRequests"})


@contextmanager
def azure_errors(action: str) -> Iterator[None]:
    """Translate what Azure's libraries raise while doing `action` into push-pools errors.

    `action` completes "could not ...", e.g. "create the container group pp-1".
    """
    from azure.core import exceptions as core

    try:
        yield
    except PushPoolsError:
        raise
    except core.ClientAuthenticationError as exc:
        raise _credentials_error(exc, action) from None
    except core.HttpResponseError as exc:
        raise _from_response_error(exc, action) from None
    except (core.ServiceRequestError, core.ServiceResponseError) as exc:
        raise AzureUnavailable(
            f"could not {action}: cannot reach Azure Resource Manager ({_first_line(exc)}); "
            "retrying later"
        ) from None
    except core.AzureError as exc:
        raise AzureError(f"could not {action}: {_first_line(exc)}") from None
    except ValueError as exc:
        # azure-identity raises ValueError for a malformed tenant or authority.
        raise AzureCredentialsError(
            f"could not {action}: the Azure credentials are not usable ({_first_line(exc)})"
        ) from None


def _credentials_error(exc: Any, action: str) -> AzureCredentialsError:
    from azure.identity import CredentialUnavailableError

    response = getattr(exc, "response", None)
    if isinstance(exc, CredentialUnavailableError):
        return AzureCredentialsError(f"could not {action}: {NO_CREDENTIALS}")
    if response is not None and getattr(response, "status_code", None) == 401:
        code = _arm_code(exc)
        return AzureCredentialsError(
            f"could not {action}: Azure Resource Manager rejected the token ({code}): update "
            "the azure-credentials block, or AZURE_CLIENT_ID / AZURE_TENANT_ID / "
            "AZURE_CLIENT_SECRET of the server",
            code=code,
        )
    return AzureCredentialsError(
        f"could not {action}: Entra ID did not issue a token ({_first_line(exc)}); the service "
        "principal's AZURE_CLIENT_ID, AZURE_TENANT_ID or AZURE_CLIENT_SECRET is wrong or expired: "
        f"update them, or make a new one with: {credentials.MAKE_PRINCIPAL_HINT}"
    )


def _from_response_error(exc: Any, action: str) -> AzureError:
    code = _arm_code(exc)
    message = _arm_message(exc)
    detail = f"{code}: {message}" if code else message
    status = int(getattr(exc, "status_code", 0) or 0)
    if status == 403 or code in ("AuthorizationFailed", "LinkedAuthorizationFailed"):
        return AzureAccessDenied(f"could not {action}: {_access_hint(code, message)}", code=code)
    if code == "SubscriptionNotFound":
        return AzureNotFound(
            f"could not {action}: {message} Set the job variable 'subscription_id' (or the "
            "provisioner's --subscription) to a subscription the credentials can use.",
            code=code,
        )
    if code == "ResourceGroupNotFound":
        return AzureNotFound(
            f"could not {action}: {message} Set the job variable 'resource_group_name' to an "
            "existing resource group, or make one with `push-pools work-pool create --type "
            "azure-container-instance:push --provision-infra`.",
            code=code,
        )
    if code == "MissingSubscriptionRegistration":
        return AzureAccessDenied(
            f"could not {action}: {message} Register it once with `az provider register "
            f"--namespace {NAMESPACE}` (or provision the pool with --provision-infra).",
            code=code,
        )
    if status == 404:
        return AzureNotFound(f"could not {action}: {detail}", code=code)
    if status == 429 or status >= 500:
        return AzureUnavailable(
            f"could not {action}: Azure is throttling or unavailable ({detail}); retrying later",
            code=code,
        )
    if status == 409 and code in _TRANSIENT_CODES:
        # ACI's "the requested resource is not available in the location": no capacity.
        return AzureInvalidRequest(f"could not {action}: {detail}", code=code)
    if status == 409:
        return AzureAlreadyExists(f"could not {action}: {detail}", code=code)
    if 400 <= status < 500:
        return AzureInvalidRequest(f"could not {action}: {detail}", code=code)
    return AzureError(f"could not {action}: {detail}", code=code)


def _access_hint(code: str | None, message: str) -> str:
    found = _ACTION.findall(message)
    if code == "LinkedAuthorizationFailed":
        scope = _LINKED_SCOPE.search(message)
        return (
            f"the Azure credentials may not use the identity {scope.group(1) if scope else ''} "
            f"(missing action {found[-1] if found else '?'}); grant them the Managed Identity "
            "Operator role on it"
        )
    scope = _SCOPE.search(message)
    text = (
        f"the Azure credentials are not allowed to perform {found[0] if found else '?'} on "
        f"{scope.group(1) if scope else 'this scope'}; grant them a role with that action (for "
        "container groups: Azure Container Instances Contributor Role on the resource group)"
    )
    group = _RESOURCE_GROUP.search(scope.group(1)) if scope else None
    if group:
        # ARM checks roles before existence: a group-scoped role sees a missing group as this.
        text += (
            f", or, if resource group {group.group(1)} does not exist, set the job variable "
            "'resource_group_name' to one that does"
        )
    return text


def _arm_code(exc: Any) -> str | None:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code else None


def _arm_message(exc: Any) -> str:
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None)
    return str(message) if message else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
