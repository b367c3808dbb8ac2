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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from push_pools import settings
from push_pools.api import blocks, deployments, infrastructure, pools, runs
from push_pools.api.deps import add_store_busy_handlers, size_threadpool
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
    # Read now: a bad value stops `server start` with one line, not a trace from the lifespan.
    lease_seconds = settings.dispatch_lease_seconds() if run_dispatcher else 0.0

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier.bind(asyncio.get_running_loop())
        size_threadpool()
        wakeups = None
        if not store.is_sqlite:
            # Servers sharing the database wake each other (SQLite has one server: no need).
            from push_pools.api.pg_wakeups import PostgresWakeups

            wakeups = PostgresWakeups(store.url, on_wake=notifier.receive).start()
            notifier.add_publisher(wakeups.publish)
            app.state.wakeups = wakeups
        task = asyncio.create_task(_scheduler_loop(store, notifier)) if run_scheduler else None
        dispatcher = None
        if run_dispatcher:
            from push_pools.dispatch import Dispatcher

            dispatcher = Dispatcher(
                store,
                api_url=api_url or settings.api_url(),
                api_key=key,
                lease_seconds=lease_seconds,
            )
            app.state.dispatcher = dispatcher
            notifier.add_listener(lambda _keys: dispatcher.wake.set())
            dispatcher.start()
        try:
            yield
        finally:
            if dispatcher is not None:
                await run_in_threadpool(dispatcher.stop)
            if wakeups is not None:
                await run_in_threadpool(wakeups.stop)
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

    @app.exception_handler(RequestValidationError)
    async def _request_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # One error shape for the whole API: the same {detail, code} as our own errors.
        return JSONResponse(
            status_code=422,
            content={"detail": _validation_message(exc), "code": "invalid_input"},
        )

    add_store_busy_handlers(app)

    app.openapi = lambda: _openapi_with_error_model(app)  # type: ignore[method-assign]

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

    for router in (
        pools.router,
        deployments.router,
        runs.router,
        blocks.router,
        infrastructure.router,
    ):
        app.include_router(router, prefix="/api")
    return app


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ())[1:]) or "body"
        parts.append(f"{location}: {error.get('msg')}")
    return "; ".join(parts)


def _openapi_with_error_model(app: FastAPI) -> dict:
    """The OpenAPI document, with FastAPI's 422 body replaced by the shape we really send."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    from push_pools.models import ErrorOut

    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["HTTPValidationError"] = ErrorOut.model_json_schema()
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


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
