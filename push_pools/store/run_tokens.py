"""Run tokens: the credential a flow run uses instead of the server's API key.

Each submission (by the dispatcher) or claim (by a worker) issues a fresh random token for that
one run; only its SHA-256 is stored, so a copy of the database grants nothing. A token lets its
run read itself and its deployment, report its state and send its logs (api/run_scope.py says
exactly which routes), and it stops working once the run has been final for GRACE.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from push_pools.states import FINAL, StateType
from push_pools.store.tables import FlowRun, RunToken, utcnow

__all__ = ["GRACE", "PREFIX", "RunScope", "is_run_token", "issue", "scope_of"]

PREFIX = "pprun_"
# Long enough for an engine's last log batch after it reported the final state.
GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class RunScope:
    """What a valid run token is for."""

    flow_run_id: str
    deployment_id: str | None
    # The code bundles of its deployment; filled in only for requests that ask for a bundle.
    bundles: frozenset[str] = frozenset()


def is_run_token(token: str) -> bool:
    return token.startswith(PREFIX)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def issue(session: Session, flow_run_id: str) -> str:
    """A new token for this run (earlier ones stay valid: a retried submit may still use one)."""
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(RunToken(token_hash=_digest(token), flow_run_id=flow_run_id))
    return token


def scope_of(session: Session, token: str, now: datetime | None = None) -> RunScope | None:
    """The run this token belongs to, or None when it is unknown or its run is long over."""
    row = session.execute(
        select(FlowRun.id, FlowRun.deployment_id, FlowRun.state_type, FlowRun.state_timestamp)
        .join(RunToken, RunToken.flow_run_id == FlowRun.id)
        .where(RunToken.token_hash == _digest(token))
    ).first()
    if row is None:
        return None
    run_id, deployment_id, state_type, state_timestamp = row
    if StateType(state_type) in FINAL and (now or utcnow()) - state_timestamp > GRACE:
        return None
    return RunScope(flow_run_id=run_id, deployment_id=deployment_id)
