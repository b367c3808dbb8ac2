"""The OAuth 2.0 token endpoint (POST /token), the one route that needs no bearer token."""

from __future__ import annotations

import urllib.parse

from tests.emulators.gcp.auth import OAuthError
from tests.emulators.gcp.rest import Request, Response, Route, route
from tests.emulators.gcp.state import GcpState

__all__ = ["routes"]


def routes(state: GcpState) -> list[Route]:
    def token(request: Request) -> Response:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        try:
            return Response(state.authority.exchange(form))
        except OAuthError as error:
            return Response(dict(error.body()), error.status)

    return [route("POST", r"/token", token, mutating=False, public=True, locked=False)]
