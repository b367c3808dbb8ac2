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
from push_pools.errors import PushPoolsError
from push_pools.models import WorkPoolCreate, WorkPoolUpdate
from push_pools.store import runs as run_store
from push_pools.store.tables import Worker
from push_pools.ui.forms import FormDep, field_errors

router = APIRouter(route_class=StoreRoute)


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


def _type_form(pool_type: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The type's default base job template, and its variables as form fields."""
    template = pool_types.get(pool_type).default_template()
    schema = template.get("variables", {})
    required = set(schema.get("required", []))
    fields = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type", "string")
        if kind not in ("string", "integer", "number", "boolean"):
            continue  # objects and lists are edited in the raw JSON
        fields.append(
            {
                "name": name,
                "kind": kind,
                "title": spec.get("title", name),
                "description": spec.get("description", ""),
                "default": spec.get("default"),
                "required": name in required,
            }
        )
    return template, fields


def _new_form(
    request: Request,
    pool_type: str | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    types = [pool_types.get(n) for n in pool_types.names()]
    template, fields = _type_form(pool_type) if pool_type in pool_types.names() else ({}, [])
    return page(
        request,
        "pool_new.html",
        status=status,
        types=types,
        pool_type=pool_type,
        fields=fields,
        template_json=values.get("base_job_template") or json.dumps(template, indent=2),
        values=values,
        errors=errors,
    )


@router.get("/work-pools/new")
def new_pool_page(request: Request, type: str | None = None) -> HTMLResponse:
    return _new_form(request, type, {}, {})


def _template_from_form(form: dict[str, str], errors: dict[str, str]) -> dict[str, Any] | None:
    raw = form.get("base_job_template", "").strip()
    if not raw:
        if form.get("type") not in pool_types.names():
            return None  # the server names the unknown type
        raw = json.dumps(pool_types.get(form["type"]).default_template())
    try:
        template = json.loads(raw)
    except json.JSONDecodeError as exc:
        errors["base_job_template"] = f"not valid JSON: {exc.msg} (line {exc.lineno})"
        return None
    if not isinstance(template, dict):
        errors["base_job_template"] = "must be a JSON object"
        return None
    properties = template.get("variables", {}).get("properties", {})
    for key, raw in form.items():
        if not key.startswith("var.") or key[4:] not in properties:
            continue
        spec = properties[key[4:]]
        if raw == "" and spec.get("type") != "boolean":
            continue
        try:
            spec["default"] = _typed(raw, spec.get("type", "string"))
        except ValueError as exc:
            errors[key] = str(exc)
    return template


def _typed(raw: str, kind: str) -> Any:
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    if kind == "boolean":
        return raw in ("on", "true", "1")
    return raw


@router.post("/work-pools/new", response_model=None)
def create_pool(
    request: Request, form: FormDep, session: SessionDep, isolation: IsolationDep
) -> Response:
    errors: dict[str, str] = {}
    pool_type = form.get("type", "")
    template = _template_from_form(form, errors)
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

    pool = pool_api.get_work_pool(name, session, isolation)
    runs = run_store.runs_out(session, run_store.list_runs(session, work_pool_id=pool.id, limit=50))
    return page(
        request,
        "pool.html",
        pool=pool,
        workers=_workers(session, [pool.id])[pool.id],
        runs=runs,
        tab=tab if tab in ("queues", "workers", "runs") else "queues",
    )


@router.post("/work-pools/{name}/pause", response_model=None)
def pause_pool(
    name: str, form: FormDep, session: SessionDep, notifier: NotifierDep, isolation: IsolationDep
) -> Response:
    paused = form.get("paused", "true") == "true"
    pool_api.update_work_pool(name, WorkPoolUpdate(paused=paused), session, notifier, isolation)
    return RedirectResponse(f"/work-pools/{name}", status_code=303)
