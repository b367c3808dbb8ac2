"""Entra's routes on the HTTPS port, and the managed-identity route on the HTTP port."""

from __future__ import annotations

from tests.emulators.azure.entra.responses import (
    IdentityHosts,
    msi_token,
    openid_configuration,
    token,
)
from tests.emulators.azure.routing import Ctx, Route
from tests.emulators.azure.wire import Response

__all__ = ["ENTRA_ROUTES", "identity_routes"]

ENTRA_ROUTES = [
    Route(
        "GET",
        "/{tenant}/v2.0/.well-known/openid-configuration",
        openid_configuration,
        anonymous=True,
        mutating=False,
    ),
    Route("POST", "/{tenant}/oauth2/v2.0/token", token, anonymous=True, mutating=False),
]


def identity_routes(hosts: IdentityHosts) -> list[Route]:
    def handler(ctx: Ctx) -> Response:
        return msi_token(ctx, hosts)

    return [Route("GET", "/msi/token", handler, anonymous=True, mutating=False)]
