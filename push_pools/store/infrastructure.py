"""Infrastructure records: the resources provisioners created or adopted, per work pool name.

Keyed by the pool's NAME with no link to the pool row: provisioning records what it creates
before the pool exists, and teardown reads them after the pool is deleted. The Plan engine
(provisioners/plan.py) decides what the records mean; this module only keeps them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from push_pools.errors import Conflict, NotFound
from push_pools.store.tables import InfrastructureRecord, utcnow


def list_records(session: Session, pool_name: str) -> list[InfrastructureRecord]:
    """The pool's records in save order (the order of each step's first save)."""
    return list(
        session.scalars(
            select(InfrastructureRecord)
            .where(InfrastructureRecord.pool_name == pool_name)
            .order_by(
                InfrastructureRecord.position,
                InfrastructureRecord.recorded,
                InfrastructureRecord.id,
            )
        )
    )


def get_record(session: Session, pool_name: str, step: str) -> InfrastructureRecord | None:
    return session.scalar(
        select(InfrastructureRecord).where(
            InfrastructureRecord.pool_name == pool_name, InfrastructureRecord.step == step
        )
    )


def save_record(
    session: Session,
    pool_name: str,
    step: str,
    *,
    kind: str,
    identifier: str,
    created: bool,
    data: dict[str, Any],
) -> InfrastructureRecord:
    """Insert or replace the record of `step`; a replaced record keeps its place in the order."""
    fields: dict[str, Any] = {
        "kind": kind,
        "identifier": identifier,
        "created": created,
        "data": data,
    }
    record = get_record(session, pool_name, step)
    if record is None:
        record = _insert(session, pool_name, step, fields)
        if record is not None:
            return record
        # A concurrent first save of this step won the race: replace what it wrote.
        record = get_record(session, pool_name, step)
        if record is None:  # it was deleted again since; nothing sane is left to do
            raise Conflict(f"the record of step '{step}' of pool '{pool_name}' changed; retry")
    for name, value in fields.items():
        setattr(record, name, value)
    record.updated = utcnow()
    session.flush()
    return record


def _insert(
    session: Session, pool_name: str, step: str, fields: dict[str, Any]
) -> InfrastructureRecord | None:
    """The new record, or None when a concurrent save inserted the same step first."""
    last = session.scalar(
        select(func.max(InfrastructureRecord.position)).where(
            InfrastructureRecord.pool_name == pool_name
        )
    )
    record = InfrastructureRecord(
        pool_name=pool_name, step=step, position=(last or 0) + 1, **fields
    )
    try:
        # A savepoint, so that losing the race on the unique (pool_name, step) leaves the
        # transaction usable for the update that follows.
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        return None
    return record


def delete_record(session: Session, pool_name: str, step: str) -> None:
    record = get_record(session, pool_name, step)
    if record is None:
        raise NotFound(
            f"no infrastructure record for step '{step}' of work pool '{pool_name}'; "
            f"`GET /api/work_pools/{pool_name}/infrastructure` lists them"
        )
    session.delete(record)
    session.flush()
