"""Entra's endpoints as MSAL uses them with a custom authority, and App Service's managed
identity endpoint as azure-identity's ManagedIdentityCredential calls it.

    GET  /{tenant}/v2.0/.well-known/openid-configuration    (MSAL's tenant discovery)
    POST /{tenant}/oauth2/v2.0/token                         (client_credentials + secret)
    GET  /msi/token?api-version=2019-08-01&resource=...      (X-IDENTITY-HEADER: <secret>)

Errors use Entra's OAuth shape (`{"error": "invalid_client", "error_description": ...}`).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.azure.entra.models import ARM_AUDIENCES, Principal
from tests.emulators.azure.routing import Ctx
from tests.emulators.azure.wire import Response, iso_now

__all__ = ["IdentityHost", "IdentityHosts", "msi_token", "openid_configuration", "token"]


@dataclass
class IdentityHost:
    """A machine in Azure (an App Service) with managed identities attached."""

    secret: str
    system: Principal | None
    user_assigned: dict[str, Principal] = field(default_factory=dict)  # resource id -> principal


class IdentityHosts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, IdentityHost] = {}

    def add(self, system: Principal | None, user_assigned: dict[str, Principal]) -> IdentityHost:
        host = IdentityHost(secrets.token_hex(16), system, dict(user_assigned))
        with self._lock:
            self._hosts[host.secret] = host
        return host

    def get(self, secret: str) -> IdentityHost | None:
        with self._lock:
            return self._hosts.get(secret)


def _oauth_error(status: int, error: str, code: int, description: str) -> Response:
    return Response(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {uuid.uuid4()} "
            f"Correlation ID: {uuid.uuid4()} Timestamp: {iso_now()}",
            "error_codes": [code],
            "timestamp": iso_now(),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
    )


def _tenant_known(ctx: Ctx) -> bool:
    return ctx.params["tenant"].lower() in (ctx.state.tenant_id.lower(), "organizations")


def openid_configuration(ctx: Ctx) -> Response:
    if not _tenant_known(ctx):
        return _oauth_error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{ctx.params['tenant']}' not found. Check to make sure you have the correct "
            "tenant ID and are signing into the correct cloud.",
        )
    base = f"{ctx.base_url}/{ctx.state.tenant_id}"
    body: dict[str, Any] = {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/v2.0",
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }
    return Response(200, body)


def token(ctx: Ctx) -> Response:
    if not _tenant_known(ctx):
        return _oauth_error(
            400, "invalid_request", 90002, f"Tenant '{ctx.params['tenant']}' not found."
        )
    form = ctx.request.form()
    grant = form.get("grant_type", "")
    if grant != "client_credentials":
        return _oauth_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'.",
        )
    client_id = form.get("client_id", "")
    principal = ctx.state.directory.by_client_id(client_id)
    if principal is None or principal.kind != "ServicePrincipal":
        return _oauth_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{ctx.state.tenant_id}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You may have sent your authentication request to the wrong tenant.",
        )
    if "client_assertion" in form:
        return _oauth_error(
            401,
            "invalid_client",
            700027,
            "The emulator accepts client secrets only, not certificate assertions.",
        )
    if form.get("client_secret") != principal.client_secret:
        return _oauth_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'.",
        )
    scope = form.get("scope", "")
    resource = scope.split(" ")[0].removesuffix(".default").removesuffix("/")
    if not scope.endswith("/.default") or resource + "/" not in {
        a if a.endswith("/") else a + "/" for a in ARM_AUDIENCES
    }:
        return _oauth_error(
            400,
            "invalid_resource" if scope.endswith("/.default") else "invalid_scope",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{ctx.state.tenant_id}. The emulator issues tokens for Azure Resource Manager "
            "only (scope https://management.azure.com/.default).",
        )
    access_token, expires_in = ctx.state.directory.issue_token(principal, resource)
    return Response(
        200,
        {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access_token,
        },
    )


def msi_token(ctx: Ctx, hosts: IdentityHosts) -> Response:
    host = hosts.get(ctx.request.headers.get("x-identity-header", ""))
    if host is None:
        return Response(401, {"statusCode": 401, "message": "Unauthorized: bad identity header"})
    query = ctx.request.query
    resource = query.get("resource", "")
    principal: Principal | None
    if "client_id" in query:
        principal = next(
            (p for p in host.user_assigned.values() if p.client_id == query["client_id"]), None
        )
    elif "object_id" in query or "principal_id" in query:
        object_id = query.get("object_id") or query.get("principal_id")
        principal = next((p for p in host.user_assigned.values() if p.object_id == object_id), None)
    elif "mi_res_id" in query:
        principal = next(
            (
                p
                for rid, p in host.user_assigned.items()
                if rid.lower() == query["mi_res_id"].lower()
            ),
            None,
        )
    else:
        principal = host.system
    if principal is None:
        return Response(
            400,
            {"statusCode": 400, "message": "No managed identity matches the specified identity."},
        )
    if resource.rstrip("/") not in {a.rstrip("/") for a in ARM_AUDIENCES}:
        return Response(
            500,
            {"statusCode": 500, "message": f"An unexpected error occured for resource {resource}."},
        )
    access_token, expires_in = ctx.state.directory.issue_token(principal, resource)
    return Response(
        200,
        {
            "access_token": access_token,
            "expires_on": str(int(time.time()) + expires_in),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        },
    )
