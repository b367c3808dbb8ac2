"""The web UI: server-rendered pages, their static files, and the offline API docs.

Route modules import only FastAPI; Jinja2 is imported on the first page rendered
(ui/render.py), so a server nobody browses does not pay for it at idle.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the UI's pages, its static files and /api/docs to the server."""
    from push_pools.ui import (
        auth,
        blocks,
        dashboard,
        deployments,
        docs,
        errors,
        pool_delete,
        pool_edit,
        pools,
        queues,
        runs,
    )

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    docs.install(app)
    for module in (
        auth,
        dashboard,
        pools,
        pool_edit,
        pool_delete,
        queues,
        deployments,
        runs,
        blocks,
    ):
        app.include_router(module.router, include_in_schema=False)
    errors.install(app)
