"""The API server: FastAPI app, auth, error mapping, and the in-process scheduler loop."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from push_pools import settings
from push_pools.api import blocks, deployments, pools, runs
from push_pools.api.notify import WorkNotifier
from push_pools.errors import PushPoolsError
from push_pools.store.db import Store

log = logging.getLogger("push_pools.server")

SCHEDULER_INTERVAL_SECONDS = 5.0


def _error_code(exc: PushPoolsError) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def create_app(
    store: Store | None = None,
    *,
    api_key: str | None = None,
    run_scheduler: bool = True,
    run_dispatcher: bool = True,
    api_url: str | None = None,
) -> FastAPI:
    """The server. `api_key` defaults to PUSH_POOLS_API_KEY; when set, every request needs it.

    `api_url` is the address flow runs of push and managed pools use to reach this server
    (default PUSH_POOLS_API_URL).
    """
    store = store or Store()
    store.migrate()
    key = api_key if api_key is not None else settings.api_key()
    notifier = WorkNotifier()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier.bind(asyncio.get_running_loop())
        task = asyncio.create_task(_scheduler_loop(store, notifier)) if run_scheduler else None
        dispatcher = None
        if run_dispatcher:
            from push_pools.dispatch import Dispatcher

            dispatcher = Dispatcher(store, api_url=api_url or settings.api_url(), api_key=key)
            app.state.dispatcher = dispatcher
            notifier.add_listener(lambda _keys: dispatcher.wake.set())
            dispatcher.start()
        try:
            yield
        finally:
            if dispatcher is not None:
                await run_in_threadpool(dispatcher.stop)
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    app = FastAPI(
        title="push-pools",
        version="0.1.0",
        description="Work pools, deployments and flow runs, pushed to your own infrastructure.",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.store = store
    app.state.notifier = notifier

    @app.exception_handler(PushPoolsError)
    async def _push_pools_error(_request: Request, exc: PushPoolsError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.message, "code": _error_code(exc)}
        )

    if key:

        @app.middleware("http")
        async def _require_api_key(request: Request, call_next):  # type: ignore[no-untyped-def]
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            token = token or request.headers.get("x-api-key", "")
            if not hmac.compare_digest(token.encode(), key.encode()):
                reason = "wrong API key" if token else "missing API key"
                return JSONResponse(
                    status_code=401,
                    content={"detail": reason, "code": "authentication_error"},
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await call_next(request)

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in (pools.router, deployments.router, runs.router, blocks.router):
        app.include_router(router, prefix="/api")
    return app


async def _scheduler_loop(store: Store, notifier: WorkNotifier) -> None:
    from push_pools.scheduler import schedule_due_runs

    event = notifier.subscribe(["scheduler"])
    while True:
        try:
            woken_pools = await run_in_threadpool(schedule_due_runs, store)
            notifier.notify(*woken_pools)
        except Exception:  # the loop must outlive one bad tick; the next one retries
            log.exception("scheduler tick failed")
        try:
            await asyncio.wait_for(event.wait(), timeout=SCHEDULER_INTERVAL_SECONDS)
        except TimeoutError:
            pass
        event.clear()
