"""Azure sign-in and client settings, shared by the ACI executor and the Azure provisioner.

azure-identity is imported inside functions: only a server that runs ACI pools pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from push_pools import settings
from push_pools.errors import InvalidInput

__all__ = ["INSTALL_HINT", "MAKE_PRINCIPAL_HINT", "client_kwargs", "credential", "require_sdk"]

INSTALL_HINT = "pip install 'push-pools[azure]'"
# What a user without a service principal runs; printed whenever none is found.
MAKE_PRINCIPAL_HINT = (
    'az ad sp create-for-rbac --name push-pools --role Owner --scopes "/subscriptions/<id>"'
)
_PUBLIC_AUTHORITIES = frozenset(
    {"login.microsoftonline.com", "login.chinacloudapi.cn", "login.microsoftonline.us"}
)
_SECRET_FIELDS = ("tenant_id", "client_id", "client_secret")


def require_sdk() -> None:
    """InvalidInput naming the extra to install when the Azure libraries are missing."""
    try:
        import azure.identity  # noqa: F401
        import azure.mgmt.core  # noqa: F401
    except ImportError as exc:
        raise InvalidInput(
            f"Azure needs its client libraries ({exc.name} is missing): {INSTALL_HINT}"
        ) from exc


def _identity_kwargs() -> dict[str, Any]:
    """Keywords every azure-identity credential takes: where to sign in, what to trust."""
    kwargs: dict[str, Any] = {}
    authority = (os.environ.get("AZURE_AUTHORITY_HOST") or "").strip()
    if authority:
        kwargs["authority"] = authority
        host = authority.split("://", 1)[-1].split("/", 1)[0]
        # MSAL asks the public cloud about any other authority first, which fails offline.
        kwargs["disable_instance_discovery"] = host not in _PUBLIC_AUTHORITIES
    ca_bundle = settings.azure_ca_bundle()
    if ca_bundle:
        kwargs["connection_verify"] = ca_bundle
    return kwargs


def credential(block: Mapping[str, Any] | None = None) -> Any:
    """A token credential: the service principal of an azure-credentials block when it has
    one; otherwise azure-identity's chain (AZURE_CLIENT_ID/SECRET/TENANT_ID, workload or
    managed identity, the az CLI's login), so a server running in Azure stores no secret."""
    require_sdk()
    given = {name: (block or {}).get(name) for name in _SECRET_FIELDS}
    if any(given.values()):
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise InvalidInput(
                f"the azure-credentials block lacks {', '.join(missing)}: a service principal "
                "needs tenant_id, client_id and client_secret"
            )
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            str(given["tenant_id"]),
            str(given["client_id"]),
            str(given["client_secret"]),
            **_identity_kwargs(),
        )
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True, **_identity_kwargs())


def client_kwargs() -> dict[str, Any]:
    """Keywords every azure-mgmt client takes: the ARM endpoint and what to trust."""
    kwargs: dict[str, Any] = {}
    endpoint = settings.azure_endpoint()
    if endpoint:
        kwargs["base_url"] = endpoint
    ca_bundle = settings.azure_ca_bundle()
    if ca_bundle:
        kwargs["connection_verify"] = ca_bundle
    return kwargs
