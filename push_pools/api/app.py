"""The API server: FastAPI app, auth, error mapping, and the in-process scheduler loop."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from push_pools import settings
from push_pools.api import blocks, bundles, deployments, infrastructure, pools, runs
from push_pools.api.body_limit import BodySizeLimit, max_body_bytes
from push_pools.api.deps import add_store_busy_handlers, size_threadpool
from push_pools.api.exposure import ALLOWED_HOSTS_ENV, allowed_hosts, host_of
from push_pools.api.notify import WorkNotifier
from push_pools.errors import PushPoolsError
from push_pools.store.db import Store

if TYPE_CHECKING:
    from push_pools.managed.isolation import Isolation

log = logging.getLogger("push_pools.server")

SCHEDULER_INTERVAL_SECONDS = 5.0
# Old write receipts and unneeded pool tombstones are deleted this often (store/pruning.py).
PRUNE_INTERVAL_SECONDS = 60.0


def _error_code(exc: PushPoolsError) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def create_app(
    store: Store | None = None,
    *,
    api_key: str | None = None,
    run_scheduler: bool = True,
    run_dispatcher: bool = True,
    api_url: str | None = None,
    bind_host: str | None = None,
) -> FastAPI:
    """The server. `api_key` defaults to PUSH_POOLS_API_KEY; when set, every request needs it.

    `api_url` is the address flow runs of push and managed pools use to reach this server
    (default PUSH_POOLS_API_URL). `bind_host` is the interface the server listens on: with
    the URLs, it names the hosts requests may address (api/exposure.py).
    """
    store = store or Store()
    store.migrate()
    with store.session() as session:
        from push_pools.store.blocks import check_encryption_key

        check_encryption_key(session)
    key = api_key if api_key is not None else settings.api_key()
    hosts = allowed_hosts(
        bind_host, [api_url, settings.api_url(), os.environ.get("PUSH_POOLS_PUBLIC_API_URL")]
    )
    notifier = WorkNotifier()
    # Read now: a bad value stops `server start` with one line, not a trace from the lifespan.
    lease_seconds = settings.dispatch_lease_seconds() if run_dispatcher else 0.0
    isolation = None
    if run_dispatcher:
        # Once, at start: the dispatcher's managed executor and the pools' output use it.
        from push_pools.managed.isolation import detect

        isolation = detect(database_url=store.url)
        if isolation.mode == "bwrap":
            log.info(isolation.startup_line())
        else:
            log.warning(isolation.startup_line())

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
                lease_seconds=lease_seconds,
                executor_factory=_executor_factory(isolation),
            )
            app.state.dispatcher = dispatcher
            notifier.add_listener(lambda _keys: dispatcher.wake.set())
            dispatcher.start()
        from push_pools.api.memory import RELEASE_AFTER_SECONDS, release_free_memory

        asyncio.get_running_loop().call_later(RELEASE_AFTER_SECONDS, release_free_memory)
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
        # Our own /api/docs (ui/docs.py): FastAPI's loads Swagger UI from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.api_key = key
    app.state.notifier = notifier
    app.state.managed_isolation = isolation
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes())

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

    @app.middleware("http")
    async def _authenticate(request: Request, call_next):  # type: ignore[no-untyped-def]
        denied = _check_host(request, hosts) or await _check_credentials(request, store, key)
        return denied if denied is not None else await call_next(request)

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in (
        pools.router,
        deployments.router,
        runs.router,
        blocks.router,
        infrastructure.router,
        bundles.router,
    ):
        app.include_router(router, prefix="/api")
    from push_pools import ui

    ui.install(app)
    return app


def _check_host(request: Request, hosts: set[str] | None) -> JSONResponse | None:
    """400 for a Host that is not one of this server's names (DNS rebinding); 403 for a
    state-changing request sent by a page of another site (its Origin)."""
    host = host_of(request.headers.get("host", ""))
    if hosts is not None and host not in hosts:
        return JSONResponse(
            status_code=400,
            content={
                "detail": f"this server does not answer to the host name {host!r}; if that is "
                f"its name, add it to {ALLOWED_HOSTS_ENV} (comma-separated) or set "
                "PUSH_POOLS_PUBLIC_API_URL",
                "code": "invalid_host",
            },
        )
    origin = request.headers.get("origin")
    if origin is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
        # Same origin only, port included: another program's page on this machine (a
        # notebook, a dev server on another port) is another site too, and a browser sends
        # this server's own pages' writes with an Origin equal to the Host it addressed.
        own = request.headers.get("host", "").strip().lower()
        if "://" not in origin or urlsplit(origin).netloc.lower() != own:
            return JSONResponse(
                status_code=403,
                content={
                    "detail": f"refused a {request.method} sent by a page of {origin!r}: only "
                    "this server's own pages may change it",
                    "code": "permission_denied",
                },
            )
    return None


def _bearer(request: Request) -> str:
    given = request.headers.get("authorization", "")
    token = given[7:] if given.lower().startswith("bearer ") else ""
    return token or request.headers.get("x-api-key", "")


async def _check_credentials(request: Request, store: Store, key: str | None) -> Response | None:
    """None when the request may go on; else the 401/403 answer.

    A run token (given to each flow run instead of the API key) is checked whether or not the
    server has a key, and allows only its own run's routes (api/run_scope.py). Without a key,
    other requests need nothing; with one, they need it.
    """
    from push_pools.store import run_tokens

    token = _bearer(request)
    if run_tokens.is_run_token(token):
        from push_pools.api.run_scope import BUNDLES_PREFIX, allows

        wants_bundle = request.url.path.startswith(BUNDLES_PREFIX)

        def lookup() -> run_tokens.RunScope | None:
            with store.read_session() as session:
                scope = run_tokens.scope_of(session, token)
                if scope is None or not wants_bundle or not scope.deployment_id:
                    return scope
                # Only for bundle requests: the engine's other calls need no extra query.
                from push_pools.store.bundles import deployment_bundle

                found = frozenset(deployment_bundle(session, scope.deployment_id))
                return dataclasses.replace(scope, bundles=found)

        scope = await run_in_threadpool(lookup)
        if scope is None:
            return _auth_error(
                401,
                "this run token is unknown or its flow run has ended; a run's token works only "
                "for that run, until shortly after it finishes",
            )
        if not allows(scope, request.method, request.url.path):
            return JSONResponse(
                status_code=403,
                content={
                    "detail": "a flow run's token may only read its own run and deployment, "
                    "download its deployment's code, report its state and send its logs; "
                    "use the server's API key for "
                    f"{request.method} {request.url.path}",
                    "code": "permission_denied",
                },
            )
        return None
    if key and not token:
        from push_pools.ui import auth as ui_auth

        if ui_auth.handles(request.url.path):
            # A browser: its session cookie, or the sign-in page.
            return ui_auth.gate(request, key)
    if key and not hmac.compare_digest(token.encode(), key.encode()):
        return _auth_error(401, "wrong API key" if token else "missing API key")
    return None


def _auth_error(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"detail": detail, "code": "authentication_error"},
        headers={"WWW-Authenticate": "Bearer"},
    )


def _executor_factory(isolation: Isolation | None) -> Callable[[str], Any]:
    """Executors by pool type; the managed one gets the isolation detected at start."""
    from push_pools.executors import load_executor

    def make(pool_type: str) -> Any:
        if pool_type == "managed":
            return load_executor(pool_type, isolation=isolation)
        return load_executor(pool_type)

    return make


def _in_words(error: dict[str, Any]) -> str:
    from push_pools.models import PATTERN_WORDS

    if error.get("type") == "string_pattern_mismatch":
        words = PATTERN_WORDS.get((error.get("ctx") or {}).get("pattern", ""))
        if words:
            return f"{error.get('input')!r} is not allowed: use {words}"
    return str(error.get("msg"))


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ())[1:]) or "body"
        parts.append(f"{location}: {_in_words(error)}")
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
    from push_pools.store.pruning import prune

    event = notifier.subscribe(["scheduler"])
    next_prune = 0.0
    while True:
        try:
            woken_pools = await run_in_threadpool(schedule_due_runs, store)
            notifier.notify(*woken_pools)
        except Exception:  # the loop must outlive one bad tick; the next one retries
            log.exception("scheduler tick failed")
        # Not at every wake-up: the loop is woken by every deployment change.
        if time.monotonic() >= next_prune:
            next_prune = time.monotonic() + PRUNE_INTERVAL_SECONDS
            try:
                await run_in_threadpool(prune, store)
            except Exception:  # as above: the next pass retries
                log.exception("pruning the store failed")
        try:
            await asyncio.wait_for(event.wait(), timeout=SCHEDULER_INTERVAL_SECONDS)
        except TimeoutError:
            pass
        event.clear()
