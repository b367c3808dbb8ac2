"""Deleting a work pool from the UI, with the CLI's rules (the store's, store/deletes.py): a
confirmation page that says what the delete will pause and cancel, and a pool with deployments
or unfinished runs deleted only when the user also ticks "force". A deleted pool's page says so.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools.api import pools as pool_api
from push_pools.api.deps import NotifierDep, SessionDep, StoreRoute
from push_pools.errors import Conflict
from push_pools.store import deletes, infrastructure
from push_pools.store import deployments as deployment_store
from push_pools.store import pools as pool_store
from push_pools.store.tables import WorkPool
from push_pools.ui.forms import FormDep

router = APIRouter(route_class=StoreRoute)


def _confirm(
    request: Request,
    name: str,
    session: Session,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    pool = pool_store.get_pool(session, name)
    deployments, run_ids = deletes.pool_work(session, pool)
    return page(
        request,
        "pool_delete.html",
        status=status,
        name=name,
        deployments=[deployment_store.full_name(d) for d in deployments],
        unfinished=len(run_ids),
        provisioned=bool(infrastructure.list_records(session, name)),
        error=error,
    )


@router.get("/work-pools/{name}/delete")
def delete_page(request: Request, name: str, session: SessionDep) -> HTMLResponse:
    return _confirm(request, name, session)


@router.post("/work-pools/{name}/delete", response_model=None)
def delete_pool(
    request: Request, name: str, form: FormDep, session: SessionDep, notifier: NotifierDep
) -> Response:
    force = form.get("force") == "on"
    try:
        pool_api.delete_work_pool(name, session, notifier, force=force, dry_run=False)
    except Conflict:
        session.rollback()
        message = "tick this to delete a pool that has deployments or unfinished runs"
        return _confirm(request, name, session, error=message, status=409)
    return RedirectResponse(f"/work-pools/{name}", status_code=303)


def tombstone(session: Session, name: str) -> WorkPool | None:
    """The most recently deleted pool that was called `name`, if any."""
    return session.scalar(
        select(WorkPool)
        .where(
            WorkPool.deleted.is_(True),
            WorkPool.name.startswith(f"{name} (deleted ", autoescape=True),
        )
        .order_by(WorkPool.updated.desc())
        .limit(1)
    )
