"""Flow run pages: the filtered list, and one run with its states, logs, cancel and retry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from push_pools.api import deployments as deployment_api
from push_pools.api import runs as run_api
from push_pools.api.deps import NotifierDep, SessionDep, StoreRoute
from push_pools.errors import NotFound, PushPoolsError
from push_pools.models import RunCreate
from push_pools.states import FINAL, StateType
from push_pools.store import runs as run_store
from push_pools.ui import console_links

router = APIRouter(route_class=StoreRoute)
PAGE_SIZE = 100


@router.get("/flow-runs")
def runs_page(
    request: Request,
    session: SessionDep,
    state: str = "",
    pool: str = "",
    deployment: str = "",
) -> HTMLResponse:
    from push_pools.ui.render import page

    error = None
    runs = []
    try:
        states = [StateType(state)] if state else None
        runs = run_api.list_flow_runs(
            session,
            state=states,
            deployment=deployment or None,
            work_pool=pool or None,
            limit=PAGE_SIZE,
        )
    except ValueError:
        error = f"{state!r} is not a state"
    except PushPoolsError as exc:
        error = exc.message
    return page(
        request,
        "runs.html",
        runs=runs,
        states=[s.value for s in StateType],
        filters={"state": state, "pool": pool, "deployment": deployment},
        error=error,
    )


def _run_page(
    request: Request,
    run_id: str,
    session: Session,
    retry_error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    from push_pools.ui.render import page

    run = run_api.get_flow_run(run_id, session)
    return page(
        request,
        "run.html",
        status=status,
        run=run,
        console=console_links.for_infrastructure(run.infrastructure_id),
        retry_error=retry_error,
        states=run_store.states_of(session, run.id),
        logs=run_store.get_logs(session, run.id, after=0, limit=1000, max_bytes=512 * 1024),
        finished=run.state in FINAL,
    )


@router.get("/flow-runs/{run_id}")
def run_page(request: Request, run_id: str, session: SessionDep) -> HTMLResponse:
    return _run_page(request, run_id, session)


@router.post("/flow-runs/{run_id}/retry", response_model=None)
def retry_run(
    request: Request, run_id: str, session: SessionDep, notifier: NotifierDep
) -> Response:
    """A new run of the same deployment with the same parameters and job variables: what
    `push-pools deployment run` would make with them (the same API route)."""
    run = run_api.get_flow_run(run_id, session)
    gone = "this run's deployment was deleted, so it cannot be run again; deploy the flow again"
    if run.deployment_id is None:
        return _run_page(request, run_id, session, retry_error=gone, status=409)
    body = RunCreate(parameters=run.parameters, job_variables=run.job_variables, tags=run.tags)
    try:
        new = deployment_api.create_run(run.deployment_id, body, session, notifier)
    except NotFound:
        session.rollback()
        return _run_page(request, run_id, session, retry_error=gone, status=409)
    except PushPoolsError as exc:
        session.rollback()
        return _run_page(request, run_id, session, retry_error=exc.message, status=exc.status_code)
    return RedirectResponse(f"/flow-runs/{new.id}", status_code=303)


@router.post("/flow-runs/{run_id}/cancel", response_model=None)
def cancel_run(run_id: str, session: SessionDep, notifier: NotifierDep) -> Response:
    run_api.cancel_flow_run(run_id, session, notifier)
    return RedirectResponse(f"/flow-runs/{run_id}", status_code=303)
