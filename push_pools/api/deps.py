"""What route handlers share: the store session, the notifier, the managed-run isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from push_pools.api.notify import WorkNotifier
from push_pools.store.db import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.store.session() as session:
        yield session


def get_notifier(request: Request) -> WorkNotifier:
    return request.app.state.notifier


def get_managed_isolation(request: Request) -> str | None:
    """How this server confines managed runs (None when it dispatches none)."""
    isolation = getattr(request.app.state, "managed_isolation", None)
    return isolation.describe() if isolation is not None else None


# scope="function": the transaction commits before the response is sent, so a client that got
# its answer can read what it wrote (the default scope commits after sending).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StoreDep = Annotated[Store, Depends(get_store)]
NotifierDep = Annotated[WorkNotifier, Depends(get_notifier)]
IsolationDep = Annotated[str | None, Depends(get_managed_isolation)]
