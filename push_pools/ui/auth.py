"""Signing in to the UI when the server has an API key.

The browser gets a session cookie (no expiry: it ends with the browser session; HttpOnly, so
page scripts cannot read it; SameSite=Strict, so other sites' pages cannot send it). Its value
is an HMAC of the key, not the key, and it is accepted only for the UI's pages and the API
docs: API clients keep sending the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from push_pools.ui.forms import FormDep

COOKIE = "push_pools_ui"
LOGIN = "/login"
# Reachable without the cookie: the sign-in page and what it needs to look right.
OPEN_PREFIXES = (LOGIN, "/ui/static/")
DOCS_PATHS = ("/api/docs", "/api/openapi.json")

router = APIRouter()


def cookie_value(key: str) -> str:
    return hmac.new(key.encode(), b"push-pools web UI session", hashlib.sha256).hexdigest()


def handles(path: str) -> bool:
    """Whether a request for `path` may be signed in with the UI's cookie."""
    return not path.startswith("/api/") or path.startswith(DOCS_PATHS)


def gate(request: Request, key: str) -> Response | None:
    """None when a browser request without the API key may go on; else the answer."""
    path = request.url.path
    if path.startswith(OPEN_PREFIXES):
        return None
    given = request.cookies.get(COOKIE, "")
    if given and hmac.compare_digest(given.encode(), cookie_value(key).encode()):
        return None
    if request.method in ("GET", "HEAD") and not path.startswith("/api/"):
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{LOGIN}?next={quote(target)}", status_code=303)
    return JSONResponse(
        status_code=401,
        content={
            "detail": "sign in at /login with the server's API key",
            "code": "authentication_error",
        },
    )


def server_key(request: Request) -> str | None:
    return getattr(request.app.state, "api_key", None)


def _safe_next(target: str) -> str:
    # Only a path on this server: a link to /login must not send the user elsewhere.
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get(LOGIN)
def login_page(request: Request, next: str = "/") -> Response:
    from push_pools.ui.render import page

    if not server_key(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return page(request, "login.html", next=_safe_next(next), error=None)


@router.post(LOGIN)
def login(
    request: Request, form: FormDep, key: Annotated[str | None, Depends(server_key)]
) -> Response:
    from push_pools.ui.render import page

    target = _safe_next(form.get("next", "/"))
    given = form.get("api_key", "")
    if key and not hmac.compare_digest(given.encode(), key.encode()):
        error = "wrong API key" if given else "enter the server's API key"
        return page(request, "login.html", status=401, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    if key:
        response.set_cookie(
            COOKIE,
            cookie_value(key),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response
