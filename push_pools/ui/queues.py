"""A pool's work queues: add one, edit its priority, limit and description, pause and resume."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from push_pools.api import pools as pool_api
from push_pools.api.deps import NotifierDep, SessionDep, StoreRoute
from push_pools.errors import PushPoolsError
from push_pools.models import WorkQueueCreate, WorkQueueOut, WorkQueueUpdate
from push_pools.store import pools as pool_store
from push_pools.ui.forms import FormDep, field_errors

router = APIRouter(route_class=StoreRoute)


def _form(
    request: Request,
    pool: str,
    queue: WorkQueueOut | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    shown: dict[str, str] = {"priority": "1"}
    if queue is not None:
        shown = {
            "name": queue.name,
            "priority": str(queue.priority),
            "concurrency_limit": ""
            if queue.concurrency_limit is None
            else str(queue.concurrency_limit),
            "description": queue.description or "",
        }
    return page(
        request,
        "queue_form.html",
        status=status,
        pool=pool,
        queue=queue,
        values={**shown, **values},
        errors=errors,
    )


def _numbers(form: dict[str, str]) -> dict[str, str | None]:
    # Left as text: the API's model turns them into numbers and words its own errors.
    return {
        "priority": form.get("priority", "").strip() or None,
        "concurrency_limit": form.get("concurrency_limit", "").strip() or None,
    }


@router.get("/work-pools/{name}/queues/new")
def new_queue_page(request: Request, name: str, session: SessionDep) -> HTMLResponse:
    pool_store.get_pool(session, name)
    return _form(request, name, None, {}, {})


@router.post("/work-pools/{name}/queues/new", response_model=None)
def create_queue(request: Request, name: str, form: FormDep, session: SessionDep) -> Response:
    try:
        numbers = {k: v for k, v in _numbers(form).items() if v is not None}
        body = WorkQueueCreate(
            name=form.get("name", ""),
            description=form.get("description") or None,
            **numbers,  # type: ignore[arg-type]
        )
        pool_api.create_work_queue(name, body, session)
    except ValidationError as exc:
        session.rollback()
        return _form(request, name, None, form, field_errors(exc), status=422)
    except PushPoolsError as exc:
        session.rollback()
        return _form(request, name, None, form, {"name": exc.message}, status=exc.status_code)
    return RedirectResponse(f"/work-pools/{name}?tab=queues", status_code=303)


@router.get("/work-pools/{name}/queues/{queue}/edit")
def edit_queue_page(request: Request, name: str, queue: str, session: SessionDep) -> HTMLResponse:
    return _form(request, name, pool_api.get_work_queue(name, queue, session), {}, {})


@router.post("/work-pools/{name}/queues/{queue}/edit", response_model=None)
def save_queue(
    request: Request,
    name: str,
    queue: str,
    form: FormDep,
    session: SessionDep,
    notifier: NotifierDep,
) -> Response:
    current = pool_api.get_work_queue(name, queue, session)
    numbers = _numbers(form)
    try:
        body = WorkQueueUpdate(
            description=form.get("description", ""),
            priority=numbers["priority"] or current.priority,  # type: ignore[arg-type]
            concurrency_limit=numbers["concurrency_limit"],  # type: ignore[arg-type]
            clear_concurrency_limit=numbers["concurrency_limit"] is None,
        )
        pool_api.update_work_queue(name, queue, body, session, notifier)
    except ValidationError as exc:
        session.rollback()
        return _form(request, name, current, form, field_errors(exc), status=422)
    return RedirectResponse(f"/work-pools/{name}?tab=queues", status_code=303)


@router.post("/work-pools/{name}/queues/{queue}/pause", response_model=None)
def pause_queue(
    name: str, queue: str, form: FormDep, session: SessionDep, notifier: NotifierDep
) -> Response:
    paused = form.get("paused", "true") == "true"
    pool_api.update_work_queue(name, queue, WorkQueueUpdate(paused=paused), session, notifier)
    return RedirectResponse(f"/work-pools/{name}?tab=queues", status_code=303)
