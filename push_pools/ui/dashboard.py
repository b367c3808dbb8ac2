"""The dashboard: runs by state over the last 24 hours, runs needing attention, pools not READY."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from push_pools.api.deps import IsolationDep, SessionDep, StoreRoute
from push_pools.states import StateType
from push_pools.store import pools as pool_store
from push_pools.store import runs as run_store
from push_pools.store.tables import FlowRun, utcnow

router = APIRouter(route_class=StoreRoute)


@router.get("/")
def dashboard(request: Request, session: SessionDep, isolation: IsolationDep) -> HTMLResponse:
    from push_pools.ui.render import page

    now = utcnow()
    # Due in the last 24 hours, as the runs list's "last 24 hours" counts them: runs scheduled
    # ahead have not happened yet.
    rows = session.execute(
        select(FlowRun.state_type, func.count())
        .where(FlowRun.scheduled_time >= now - timedelta(hours=24), FlowRun.scheduled_time <= now)
        .group_by(FlowRun.state_type)
    ).all()
    counts: dict[str, int] = {state: count for state, count in rows}
    by_state = [(s.value, counts.get(s.value, 0)) for s in StateType]
    attention = run_store.runs_out(
        session, run_store.list_runs(session, states=[StateType.LATE, StateType.CRASHED], limit=20)
    )
    pools = pool_store.pools_out(session, pool_store.list_pools(session), isolation)
    return page(
        request,
        "dashboard.html",
        by_state=by_state,
        most=max([n for _s, n in by_state] + [1]),
        attention=attention,
        pools_not_ready=[p for p in pools if p.status != "READY"],
        pool_count=len(pools),
    )
