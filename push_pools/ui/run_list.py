"""The rows of the flow runs page: one page of runs, newest first, with keyset paging.

Reads only the columns a row shows: the API's full run (parameters, job variables, result, all
JSON) costs more to load and convert than the page costs to render.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from push_pools.errors import InvalidInput
from push_pools.states import StateType
from push_pools.store.tables import Deployment, FlowRun, WorkPool, utcnow

WINDOWS = {
    "hour": ("last hour", timedelta(hours=1)),
    "day": ("last 24 hours", timedelta(days=1)),
    "week": ("last 7 days", timedelta(days=7)),
}
UPCOMING = 10


@dataclass(frozen=True)
class RunRow:
    id: str
    name: str
    state: StateType
    state_name: str
    scheduled_time: datetime
    deployment_name: str | None
    work_pool_name: str | None


@dataclass(frozen=True)
class RunPage:
    runs: list[RunRow]
    upcoming: list[RunRow]
    next_cursor: str | None


def cursor_of(row: RunRow) -> str:
    return f"{row.scheduled_time.isoformat()}~{row.id}"


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    when, sep, run_id = cursor.partition("~")
    try:
        if not sep or not run_id:
            raise ValueError
        return datetime.fromisoformat(when), run_id
    except ValueError:
        raise InvalidInput(f"{cursor!r} is not a page of this list; start again") from None


def _rows(session: Session, rows: Select[Any]) -> list[RunRow]:
    found = session.execute(rows).all()
    deployment_ids = {r.deployment_id for r in found if r.deployment_id}
    pool_ids = {r.work_pool_id for r in found if r.work_pool_id}
    names: dict[str, str] = {}
    if deployment_ids:
        query = select(Deployment.id, Deployment.name).where(Deployment.id.in_(deployment_ids))
        names.update((id_, name) for id_, name in session.execute(query))
    if pool_ids:
        query = select(WorkPool.id, WorkPool.name).where(WorkPool.id.in_(pool_ids))
        names.update((id_, name) for id_, name in session.execute(query))
    return [
        RunRow(
            id=r.id,
            name=r.name,
            state=StateType(r.state_type),
            state_name=r.state_name,
            scheduled_time=r.scheduled_time,
            deployment_name=names.get(r.deployment_id or ""),
            work_pool_name=names.get(r.work_pool_id or ""),
        )
        for r in found
    ]


def check_window(window: str) -> None:
    if window and window not in WINDOWS:
        raise InvalidInput(
            f"{window!r} is not a time window: use {', '.join(WINDOWS)} or leave it out"
        )


def runs_page(
    session: Session,
    *,
    state: StateType | None,
    deployment_id: str | None,
    work_pool_id: str | None,
    window: str,
    cursor: str,
    size: int,
) -> RunPage:
    """Runs due by now (within `window` of it), newest first, `size` after `cursor`; and on the
    first page of the whole history, the next runs scheduled ahead, soonest first."""
    check_window(window)
    now = utcnow()
    columns = select(
        FlowRun.id,
        FlowRun.name,
        FlowRun.state_type,
        FlowRun.state_name,
        FlowRun.scheduled_time,
        FlowRun.deployment_id,
        FlowRun.work_pool_id,
    )
    if state is not None:
        columns = columns.where(FlowRun.state_type == state.value)
    if deployment_id:
        columns = columns.where(FlowRun.deployment_id == deployment_id)
    if work_pool_id:
        columns = columns.where(FlowRun.work_pool_id == work_pool_id)
    due = columns.where(FlowRun.scheduled_time <= now)
    if window in WINDOWS:
        due = due.where(FlowRun.scheduled_time >= now - WINDOWS[window][1])
    if cursor:
        when, run_id = _parse_cursor(cursor)
        due = due.where(
            or_(
                FlowRun.scheduled_time < when,
                and_(FlowRun.scheduled_time == when, FlowRun.id < run_id),
            )
        )
    rows = _rows(
        session,
        due.order_by(FlowRun.scheduled_time.desc(), FlowRun.id.desc()).limit(size + 1),
    )
    upcoming: list[RunRow] = []
    if not cursor and window not in WINDOWS:
        ahead = columns.where(FlowRun.scheduled_time > now)
        upcoming = _rows(
            session, ahead.order_by(FlowRun.scheduled_time, FlowRun.id).limit(UPCOMING)
        )
    more = len(rows) > size
    rows = rows[:size]
    return RunPage(rows, upcoming, cursor_of(rows[-1]) if more else None)
