"""Editing a work pool: its description, concurrency limit and base job template, the job
variables' defaults shown as a form made from the template's `variables` schema."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from push_pools.api import pools as pool_api
from push_pools.api.deps import IsolationDep, NotifierDep, SessionDep, StoreRoute
from push_pools.errors import PushPoolsError
from push_pools.models import WorkPoolOut, WorkPoolUpdate
from push_pools.ui import job_form
from push_pools.ui.forms import FormDep, field_errors

router = APIRouter(route_class=StoreRoute)


def _form(
    request: Request,
    pool: WorkPoolOut,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    original = values.get(job_form.ORIGINAL) or json.dumps(pool.base_job_template, indent=2)
    limit = "" if pool.concurrency_limit is None else str(pool.concurrency_limit)
    return page(
        request,
        "pool_edit.html",
        status=status,
        pool=pool,
        fields=job_form.fields_of(original),
        template_json=values.get("base_job_template") or original,
        original_json=original,
        values={"description": pool.description or "", "concurrency_limit": limit, **values},
        errors=errors,
    )


@router.get("/work-pools/{name}/edit")
def edit_page(
    request: Request, name: str, session: SessionDep, isolation: IsolationDep
) -> HTMLResponse:
    return _form(request, pool_api.get_work_pool(name, session, isolation), {}, {})


@router.post("/work-pools/{name}/edit", response_model=None)
def save_pool(
    request: Request,
    name: str,
    form: FormDep,
    session: SessionDep,
    notifier: NotifierDep,
    isolation: IsolationDep,
) -> Response:
    pool = pool_api.get_work_pool(name, session, isolation)
    errors: dict[str, str] = {}
    template = job_form.template_from_form(form, errors, pool.base_job_template)
    if errors:
        return _form(request, pool, form, errors, status=422)
    limit = form.get("concurrency_limit", "").strip()
    try:
        body = WorkPoolUpdate(
            base_job_template=template,
            description=form.get("description", ""),
            concurrency_limit=limit or None,  # type: ignore[arg-type]
            clear_concurrency_limit=not limit,
        )
        pool_api.update_work_pool(name, body, session, notifier, isolation)
    except ValidationError as exc:
        session.rollback()
        return _form(request, pool, form, field_errors(exc), status=422)
    except PushPoolsError as exc:
        session.rollback()
        return _form(request, pool, form, {"base_job_template": exc.message}, exc.status_code)
    return RedirectResponse(f"/work-pools/{name}", status_code=303)
