"""Errors on the UI's pages are pages too: a 404 with a way back instead of JSON."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from push_pools.errors import PushPoolsError


def is_page(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and request.method in ("GET", "HEAD")


def install(app: FastAPI) -> None:
    api_error = app.exception_handlers.get(PushPoolsError)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if is_page(request) and exc.status_code == 404:
            from push_pools.ui.render import page

            return page(
                request, "error.html", status=404, message="There is no page here.", code=404
            )
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(PushPoolsError)
    async def _store_error(request: Request, exc: PushPoolsError) -> Response:
        if is_page(request):
            from push_pools.ui.render import page

            return page(
                request,
                "error.html",
                status=exc.status_code,
                message=exc.message,
                code=exc.status_code,
            )
        if api_error is None:  # create_app installs one before the UI; never reached
            return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
        answer = api_error(request, exc)
        return answer if isinstance(answer, Response) else await answer
