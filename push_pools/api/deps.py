"""What route handlers share: the store session, the notifier, the managed-run isolation."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from push_pools.api.notify import WorkNotifier
from push_pools.store.db import API_THREADS, BUSY_TIMEOUT_SECONDS, WRITE_QUEUE, Store
from push_pools.store.write_queue import StoreBusy

# Methods whose handlers only read: their session takes no write lock.
READ_METHODS = frozenset({"GET", "HEAD"})
RETRY_AFTER_SECONDS = 1


def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session. Made here without a thread hop: it takes its connection on its
    first query, in the handler's thread, and StoreRoute ends it there."""
    store: Store = request.app.state.store
    if request.method in READ_METHODS:
        session = store.read_sessions()
    else:
        session = store.request_sessions()
    try:
        yield session
    except BaseException:
        await _end(session, commit=False)
        raise
    else:
        await _end(session, commit=True)


async def _end(session: Session, *, commit: bool) -> None:
    if session.in_transaction():
        # Only for a handler that is not a StoreRoute, or used its session after returning.
        await run_in_threadpool(session.commit if commit else session.rollback)
    session.close()  # no transaction left: nothing to send to the database


class StoreRoute(APIRoute):
    """A route whose handler ends its store session in its own thread, as soon as it returns:
    committed, or rolled back if it raised. On SQLite a writing handler first waits for its
    turn in the store's WriteQueue.

    FastAPI would end the session only after serializing the response, which for a sync
    handler waits for another threadpool slot: under load every slot is taken by handlers
    waiting for the connections (and the SQLite write lock) that those sessions still hold."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _ending_sessions(endpoint), **kwargs)


def _ending_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):
        return endpoint  # async handlers open and end their own sessions in a thread

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        sessions = [value for value in kwargs.values() if isinstance(value, Session)]
        queue = next((s.info[WRITE_QUEUE] for s in sessions if s.info.get(WRITE_QUEUE)), None)
        with queue.turn(BUSY_TIMEOUT_SECONDS) if queue else contextlib.nullcontext():
            try:
                result = endpoint(*args, **kwargs)
            except BaseException:
                for session in sessions:
                    session.rollback()
                raise
            for session in sessions:
                if session.in_transaction():
                    session.commit()
        return result

    return run


def get_notifier(request: Request) -> WorkNotifier:
    return request.app.state.notifier


def get_managed_isolation(request: Request) -> str | None:
    """How this server confines managed runs (None when it dispatches none)."""
    isolation = getattr(request.app.state, "managed_isolation", None)
    return isolation.describe() if isolation is not None else None


# scope="function": should a handler not have ended its session (StoreRoute does), it still
# commits before the response is sent, so a client that got its answer can read what it wrote.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StoreDep = Annotated[Store, Depends(get_store)]
NotifierDep = Annotated[WorkNotifier, Depends(get_notifier)]
IsolationDep = Annotated[str | None, Depends(get_managed_isolation)]


def size_threadpool() -> None:
    """Run sync handlers on as many threads as the store's pool has connections for them
    (call from within the server's event loop)."""
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS


def add_store_busy_handlers(app: FastAPI) -> None:
    """A request that waited BUSY_TIMEOUT_SECONDS for a connection or the write lock answers
    503 with Retry-After, so its client backs off and retries instead of seeing a 500."""

    async def _pool_exhausted(_request: Request, _exc: Exception) -> JSONResponse:
        return _busy("no database connection became free")

    async def _locked(request: Request, exc: Exception) -> JSONResponse:
        if "database is locked" not in str(exc):
            raise exc
        return _busy("the store's write lock stayed taken")

    async def _no_turn(_request: Request, _exc: Exception) -> JSONResponse:
        return _busy("no turn to write came")

    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(StoreBusy, _no_turn)
    app.add_exception_handler(OperationalError, _locked)


def _busy(reason: str) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={
            "detail": f"the server is busy: {reason} within {BUSY_TIMEOUT_SECONDS:g} s; "
            f"retry in {RETRY_AFTER_SECONDS} s",
            "code": "server_busy",
        },
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
