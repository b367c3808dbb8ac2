"""Receipts of writes made with a client-made id, so that a retried request is applied once.

Callers lock the run first (`runs.lock_run`): two copies of one request then take turns, and
the second finds the first one's receipt. Receipts are kept for `pruning.RECEIPT_WINDOW`, far
longer than a client keeps retrying.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools.errors import Conflict
from push_pools.store.tables import WriteReceipt

_KIND = "_kind"


def find(session: Session, run_id: str, key: str, kind: str) -> dict[str, Any] | None:
    """What the `kind` write ("logs", "state") with this id was answered, if it was applied
    before. The same id on another kind of write is a client's mistake: refused, not replayed
    as an answer of the wrong shape."""
    answer = session.scalar(
        select(WriteReceipt.answer).where(
            WriteReceipt.flow_run_id == run_id, WriteReceipt.key == key
        )
    )
    if answer is None:
        return None
    if answer.get(_KIND, kind) != kind:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for a {answer[_KIND]} write of this run; "
            "make a new key for each write"
        )
    return {name: value for name, value in answer.items() if name != _KIND}


def record(session: Session, run_id: str, key: str, kind: str, answer: dict[str, Any]) -> None:
    session.add(WriteReceipt(flow_run_id=run_id, key=key, answer={**answer, _KIND: kind}))
