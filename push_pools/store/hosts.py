"""Hosts: each server's heartbeat, and the managed runs left on a host that stopped beating.

A managed run's sandbox lives on one host's disk (FlowRun.host_id). Only that host's server can
watch it; when the host is gone, another server marks the run Crashed instead (push_pools/hosts.py
decides when; this module only reads and writes).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools.states import ACTIVE, FINAL, StateType
from push_pools.store import runs as run_store
from push_pools.store.tables import FlowRun, Host, utcnow

ACTIVE_VALUES = [s.value for s in ACTIVE]


def beat(session: Session, host_id: str, now: datetime | None = None) -> None:
    """Record one heartbeat of `host_id` (its row is made on the first)."""
    now = now or utcnow()
    # Read-modify-write is safe: only this host's server writes its row.
    row = session.get(Host, host_id)
    if row is None:
        session.add(Host(id=host_id, beats=1, last_heartbeat=now))
    else:
        row.beats += 1
        row.last_heartbeat = now


def beats(session: Session) -> dict[str, tuple[int, datetime]]:
    """Every host's heartbeat count and the time of its last heartbeat."""
    return {
        host_id: (count, last)
        for host_id, count, last in session.execute(
            select(Host.id, Host.beats, Host.last_heartbeat)
        ).tuples()
    }


def active_runs_on(session: Session, host_id: str) -> list[str]:
    """Ids of the runs on `host_id` that have not finished."""
    return list(
        session.scalars(
            select(FlowRun.id).where(
                FlowRun.host_id == host_id, FlowRun.state_type.in_(ACTIVE_VALUES)
            )
        )
    )


def crash_runs_on(
    session: Session, host_id: str, run_ids: list[str], message: str, details: dict[str, str]
) -> list[str]:
    """Mark Crashed those of `run_ids` still unfinished on `host_id`; the ids it crashed.

    The runs are locked and checked again, so of two servers that find the same dead host, the
    second finds them finished and each run is crashed once."""
    crashed = []
    for run_id, run in run_store.lock_runs(session, run_ids).items():
        if run.host_id != host_id or StateType(run.state_type) in FINAL:
            continue
        run_store.record_state(session, run, StateType.CRASHED, message, details)
        crashed.append(run_id)
    session.flush()
    return crashed
