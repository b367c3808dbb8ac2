"""/api/docs with Swagger UI's files served from the swagger-ui-bundle package: no CDN, so
the page works on a machine without internet."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

ASSETS = "/api/docs/assets"
DOCUMENT = "/api/docs/openapi.json"


def install(app: FastAPI) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCUMENT, include_in_schema=False)
    def docs_document() -> JSONResponse:
        # Swagger UI 4 (the newest the package ships) refuses to render a document that says
        # OpenAPI 3.1; ours uses nothing 3.0 viewers cannot show, so the page gets it as 3.0.3.
        return JSONResponse({**app.openapi(), "openapi": "3.0.3"})

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=DOCUMENT,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
