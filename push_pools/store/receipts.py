"""Receipts of writes made with a client-made id, so that a retried request is applied once.

Callers lock the run first (`runs.lock_run`): two copies of one request then take turns, and
the second finds the first one's receipt.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools.store.tables import WriteReceipt


def find(session: Session, run_id: str, key: str) -> dict[str, Any] | None:
    """What the write with this id was answered, if it was applied before."""
    return session.scalar(
        select(WriteReceipt.answer).where(
            WriteReceipt.flow_run_id == run_id, WriteReceipt.key == key
        )
    )


def record(session: Session, run_id: str, key: str, answer: dict[str, Any]) -> None:
    session.add(WriteReceipt(flow_run_id=run_id, key=key, answer=answer))
