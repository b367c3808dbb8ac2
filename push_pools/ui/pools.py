"""Work pool pages: the list, one pool's queues, workers and runs, create, pause and resume."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from push_pools import pool_types
from push_pools.api import pools as pool_api
from push_pools.api.deps import IsolationDep, NotifierDep, SessionDep, StoreRoute
from push_pools.errors import NotFound, PushPoolsError
from push_pools.models import WorkPoolCreate, WorkPoolUpdate
from push_pools.store import infrastructure
from push_pools.store import pools as pool_store
from push_pools.store import runs as run_store
from push_pools.store.tables import Worker, utcnow
from push_pools.ui import console_links, job_form, pool_delete
from push_pools.ui.forms import FormDep, field_errors

router = APIRouter(route_class=StoreRoute)
# A pool page's tabs, each its own address (?tab=...); provisioning only for push pools.
TABS = ("queues", "workers", "runs", "provisioning")


@router.get("/work-pools")
def pools_page(request: Request, session: SessionDep, isolation: IsolationDep) -> HTMLResponse:
    from push_pools.ui.render import page

    pools = pool_api.list_work_pools(session, isolation)
    workers = _workers(session, [p.id for p in pools])
    return page(request, "pools.html", pools=pools, workers=workers)


def _workers(session: Any, pool_ids: list[str]) -> dict[str, list[Worker]]:
    found: dict[str, list[Worker]] = {pool_id: [] for pool_id in pool_ids}
    rows = session.scalars(
        select(Worker).where(Worker.work_pool_id.in_(pool_ids)).order_by(Worker.name)
    )
    for row in rows:
        found[row.work_pool_id].append(row)
    return found


def _worker_rows(workers: list[Worker]) -> list[dict[str, Any]]:
    """Each worker with whether it still counts: one silent for longer than the store's
    staleness limit no longer makes its pool READY, so it shows as OFFLINE."""
    now = utcnow()
    limit = int(pool_store.WORKER_STALE_AFTER.total_seconds())
    rows = []
    for worker in workers:
        online = now - worker.last_heartbeat < pool_store.WORKER_STALE_AFTER
        rows.append(
            {
                "name": worker.name,
                "last_heartbeat": worker.last_heartbeat,
                "status": "ONLINE" if online else "OFFLINE",
                "reason": None if online else f"has not polled for over {limit} s",
            }
        )
    return rows


def _new_form(
    request: Request,
    pool_type: str | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    types = [pool_types.get(n) for n in pool_types.names()]
    template: dict[str, Any] = {}
    if pool_type in pool_types.names():
        template = pool_types.get(pool_type).default_template()
    original = values.get(job_form.ORIGINAL) or json.dumps(template, indent=2)
    return page(
        request,
        "pool_new.html",
        status=status,
        types=types,
        pool_type=pool_type,
        fields=job_form.fields_of(original) if template else [],
        template_json=values.get("base_job_template") or original,
        original_json=original,
        values=values,
        errors=errors,
    )


@router.get("/work-pools/new")
def new_pool_page(request: Request, type: str | None = None) -> HTMLResponse:
    return _new_form(request, type, {}, {})


@router.post("/work-pools/new", response_model=None)
def create_pool(
    request: Request, form: FormDep, session: SessionDep, isolation: IsolationDep
) -> Response:
    errors: dict[str, str] = {}
    pool_type = form.get("type", "")
    fallback = None
    if pool_type in pool_types.names():
        fallback = pool_types.get(pool_type).default_template()
    template = job_form.template_from_form(form, errors, fallback)
    limit = form.get("concurrency_limit", "").strip()
    if errors:
        return _new_form(request, pool_type, form, errors, status=422)
    try:
        body = WorkPoolCreate(
            name=form.get("name", ""),
            type=pool_type,
            base_job_template=template,
            description=form.get("description") or None,
            concurrency_limit=limit or None,  # type: ignore[arg-type]
        )
        pool = pool_api.create_work_pool(body, session, isolation)
    except ValidationError as exc:
        session.rollback()
        return _new_form(request, pool_type, form, field_errors(exc), status=422)
    except PushPoolsError as exc:
        session.rollback()
        field = "name" if "name" in exc.message or "exists" in exc.message else "base_job_template"
        return _new_form(request, pool_type, form, {field: exc.message}, status=exc.status_code)
    return RedirectResponse(f"/work-pools/{pool.name}", status_code=303)


@router.get("/work-pools/{name}")
def pool_page(
    request: Request, name: str, session: SessionDep, isolation: IsolationDep, tab: str = "queues"
) -> HTMLResponse:
    from push_pools.ui.render import page

    try:
        pool = pool_api.get_work_pool(name, session, isolation)
    except NotFound:
        gone = pool_delete.tombstone(session, name)
        if gone is None:
            raise
        return page(request, "pool_deleted.html", status=404, name=name, pool=gone)
    is_push = pool_types.get(pool.type).is_push
    tabs = [t for t in TABS if is_push or t != "provisioning"]
    tab = tab if tab in tabs else "queues"
    runs = []
    if tab == "runs":
        runs = run_store.runs_out(
            session, run_store.list_runs(session, work_pool_id=pool.id, limit=50)
        )
    records = []
    if tab == "provisioning":
        records = [
            {"record": r, "console": console_links.for_record(r.identifier)}
            for r in infrastructure.list_records(session, pool.name)
        ]
    return page(
        request,
        "pool.html",
        pool=pool,
        workers=_worker_rows(_workers(session, [pool.id])[pool.id]) if tab == "workers" else [],
        runs=runs,
        records=records,
        is_push=is_push,
        tab=tab,
    )


@router.post("/work-pools/{name}/pause", response_model=None)
def pause_pool(
    name: str, form: FormDep, session: SessionDep, notifier: NotifierDep, isolation: IsolationDep
) -> Response:
    paused = form.get("paused", "true") == "true"
    pool_api.update_work_pool(name, WorkPoolUpdate(paused=paused), session, notifier, isolation)
    # Back to the tab the user paused from (one of the page's own, nothing else in the URL).
    tab = form.get("tab", "")
    query = f"?tab={tab}" if tab in TABS else ""
    return RedirectResponse(f"/work-pools/{name}{query}", status_code=303)
