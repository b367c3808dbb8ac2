"""Flow run pages: the filtered list, and one run with its states, logs and cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from push_pools.api import runs as run_api
from push_pools.api.deps import NotifierDep, SessionDep, StoreRoute
from push_pools.errors import PushPoolsError
from push_pools.states import FINAL, StateType
from push_pools.store import runs as run_store

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


@router.get("/flow-runs/{run_id}")
def run_page(request: Request, run_id: str, session: SessionDep) -> HTMLResponse:
    from push_pools.ui.render import page

    run = run_api.get_flow_run(run_id, session)
    return page(
        request,
        "run.html",
        run=run,
        states=run_store.states_of(session, run.id),
        logs=run_store.get_logs(session, run.id, after=0, limit=1000, max_bytes=512 * 1024),
        finished=run.state in FINAL,
    )


@router.post("/flow-runs/{run_id}/cancel", response_model=None)
def cancel_run(run_id: str, session: SessionDep, notifier: NotifierDep) -> Response:
    run_api.cancel_flow_run(run_id, session, notifier)
    return RedirectResponse(f"/flow-runs/{run_id}", status_code=303)
