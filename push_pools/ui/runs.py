"""Flow run pages: the filtered list, and one run with its states, logs, cancel and retry."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools.api import deployments as deployment_api
from push_pools.api import runs as run_api
from push_pools.api.deps import NotifierDep, SessionDep, StoreRoute
from push_pools.errors import InvalidInput, NotFound, PushPoolsError
from push_pools.models import RunCreate
from push_pools.states import FINAL, StateType
from push_pools.store import deployments as deployment_store
from push_pools.store import pools as pool_store
from push_pools.store import runs as run_store
from push_pools.store.tables import Deployment, WorkPool
from push_pools.ui import console_links, run_list

router = APIRouter(route_class=StoreRoute)
PAGE_SIZE = 50


@router.get("/flow-runs")
def runs_page(
    request: Request,
    session: SessionDep,
    state: str = "",
    pool: str = "",
    deployment: str = "",
    since: str = "",
    before: str = "",
) -> HTMLResponse:
    from push_pools.ui.render import page

    errors: dict[str, str] = {}
    found = run_list.RunPage([], [], None)
    filters = {"state": state, "pool": pool, "deployment": deployment, "since": since}
    # Each filter is read on its own, so every wrong one is named beside its field at once.
    chosen = None
    if state:
        try:
            chosen = StateType(state)
        except ValueError:
            errors["state"] = f"{state!r} is not a state"
    deployment_id = pool_id = None
    try:
        deployment_id = _deployment_id(session, deployment)
    except PushPoolsError as exc:
        errors["deployment"] = exc.message
    try:
        pool_id = pool_store.get_pool(session, pool).id if pool else None
    except PushPoolsError as exc:
        errors["pool"] = exc.message
    try:
        run_list.check_window(since)
    except PushPoolsError as exc:
        errors["since"] = exc.message
    if not errors:
        try:
            found = run_list.runs_page(
                session,
                state=chosen,
                deployment_id=deployment_id,
                work_pool_id=pool_id,
                window=since,
                cursor=before,
                size=PAGE_SIZE,
            )
        except PushPoolsError as exc:
            errors[""] = exc.message
    kept = {k: v for k, v in filters.items() if v}
    pool_names, deployment_names = _choices(session)
    return page(
        request,
        "runs.html",
        runs=found.runs,
        upcoming=found.upcoming,
        next_page=urlencode({**kept, "before": found.next_cursor}) if found.next_cursor else None,
        first_page=urlencode(kept) if before else None,
        states=[s.value for s in StateType],
        windows=run_list.WINDOWS,
        filters=filters,
        errors=errors,
        pool_names=pool_names,
        deployment_names=deployment_names,
    )


# Suggestions for the filter fields; beyond this many the user types the name anyway.
CHOICES = 500


def _choices(session: Session) -> tuple[list[str], list[str]]:
    """The pool and deployment names the filters suggest (names only: the page stays light)."""
    pools = session.scalars(
        select(WorkPool.name)
        .where(WorkPool.deleted.is_(False))
        .order_by(WorkPool.name)
        .limit(CHOICES)
    )
    deployments = session.execute(
        select(Deployment.flow_name, Deployment.name)
        .order_by(Deployment.flow_name, Deployment.name)
        .limit(CHOICES)
    )
    return list(pools), [f"{flow}/{name}" for flow, name in deployments]


def _deployment_id(session: Session, full_name: str) -> str | None:
    if not full_name:
        return None
    flow_name, sep, name = full_name.partition("/")
    if not sep:
        raise InvalidInput(
            f"'{full_name}' is not a deployment name: use 'flow-name/deployment-name'"
        )
    return deployment_store.get_deployment_by_name(session, flow_name, name).id


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
