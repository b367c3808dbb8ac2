"""The typed HTTP client that the CLI, the SDK, workers and the engine share.

Returns plain JSON dicts (the API's documented fields) and turns every HTTP failure into one of
push_pools.errors' exceptions, so callers never see an httpx error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from push_pools import settings
from push_pools.errors import (
    AlreadyExists,
    AuthenticationError,
    Conflict,
    InvalidInput,
    NotFound,
    PushPoolsError,
    ServerUnreachable,
)

if TYPE_CHECKING:
    import httpx

_ERRORS_BY_STATUS: dict[int, type[PushPoolsError]] = {
    400: InvalidInput,
    404: NotFound,
    409: Conflict,
    # The body is over the server's limit: the message says what the limit is.
    413: InvalidInput,
    422: InvalidInput,
}
# Methods whose repeat is harmless: a request of these may be sent again after the connection
# broke with the request possibly applied.
_IDEMPOTENT_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
# Longest wait a 503's Retry-After may impose between two tries.
_MAX_RETRY_AFTER_SECONDS = 10.0


def _import_httpx_without_its_cli() -> None:
    """Import httpx without its own command-line tool: httpx's package imports it when click is
    installed (uvicorn brings click), and with it click, rich and pygments, about half of
    httpx's import time, which every CLI command and every run's engine would pay. A None entry
    in sys.modules makes that optional import fail the way httpx expects when it is absent."""
    import sys

    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


class _Failures(NamedTuple):
    """The exception classes of the HTTP client in use, by what a failure means."""

    connect: type[Exception]  # nothing was sent
    retryable: tuple[type[Exception], ...]  # no answer: may be sent again if harmless
    transport: type[Exception]  # any other failure to exchange


def _seg(value: str) -> str:
    return quote(value, safe="")


class Client:
    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        retry_unreachable_seconds: float = 0.0,
        stdlib_http: bool = False,
    ) -> None:
        """`retry_unreachable_seconds`: keep retrying (with backoff) while the server cannot be
        reached, e.g. while it restarts; the engine uses it so a run survives a server restart.
        `stdlib_http`: talk to a plain-http API without importing httpx (push_pools/http_stdlib.py),
        for a CLI command's few requests; other URLs still use httpx."""
        self.api_url = (api_url or settings.api_url()).rstrip("/")
        key = api_key if api_key is not None else settings.api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.retry_unreachable_seconds = retry_unreachable_seconds
        self._http: Any
        if stdlib_http:
            from push_pools import http_stdlib

            if http_stdlib.usable_for(self.api_url):
                self._http = http_stdlib.StdlibHttp(self.api_url, headers, timeout)
                self._failures = _Failures(
                    http_stdlib.ConnectError,
                    (http_stdlib.ConnectError, http_stdlib.ReadError),
                    http_stdlib.TransportError,
                )
                return
        _import_httpx_without_its_cli()
        import httpx  # imported here so that `push-pools --help` does not pay for it

        self._http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout)
        self._failures = _Failures(
            httpx.ConnectError,
            (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError),
            httpx.TransportError,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, idempotency_key: str | None = None, **kwargs: Any
    ) -> Any:
        """Send a request; while `retry_unreachable_seconds` lasts, send it again when the
        server could not be reached or answered 503 (busy, or starting).

        A request that may have reached the server before the connection broke is sent again
        only when a repeat is harmless: an idempotent method, or an `idempotency_key` (an id
        the server uses to apply the write once)."""
        response = self.send(method, path, idempotency_key=idempotency_key, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def send(
        self, method: str, path: str, *, idempotency_key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """As `request`, but the successful response itself (for bodies that are not JSON)."""
        import time

        failures = self._failures
        if idempotency_key:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Idempotency-Key": idempotency_key}
        repeatable = method.upper() in _IDEMPOTENT_METHODS or bool(idempotency_key)
        deadline = time.monotonic() + self.retry_unreachable_seconds
        delay = 0.1
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except failures.retryable as exc:
                # A refused connection never carried the request; a broken one may have.
                if (
                    repeatable or isinstance(exc, failures.connect)
                ) and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                raise self._unreachable(exc) from exc
            except failures.transport as exc:
                raise self._unreachable(exc) from exc
            if response.status_code == 503:
                wait = _retry_after(response, delay)
                if time.monotonic() + wait < deadline:
                    time.sleep(wait)
                    delay = min(delay * 2, 5.0)
                    continue
            break
        if response.status_code >= 400:
            raise _error_from_response(response, self.api_url)
        return response

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(
            f"cannot reach the push-pools API at {self.api_url} ({type(exc).__name__}). "
            "Start it with `push-pools server start`, or set PUSH_POOLS_API_URL to "
            "the server's address."
        )

    # --- server ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    # --- work pools ----------------------------------------------------------------------------

    def create_work_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/work_pools", json=body)

    def list_work_pools(self) -> list[dict[str, Any]]:
        return self.request("GET", "/work_pools")

    def get_work_pool(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/work_pools/{_seg(name)}")

    def update_work_pool(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/work_pools/{_seg(name)}", json=body)

    def delete_work_pool(
        self, name: str, *, force: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete a pool; with deployments or unfinished runs, only with `force` (Conflict
        otherwise). Answers what was (with `dry_run`: would be) paused and cancelled."""
        return self.request(
            "DELETE", f"/work_pools/{_seg(name)}", params=_delete_params(force, dry_run)
        )

    def list_pool_types(self) -> list[dict[str, Any]]:
        return self.request("GET", "/work_pool_types")

    def default_base_job_template(self, pool_type: str) -> dict[str, Any]:
        return self.request("GET", f"/work_pool_types/{_seg(pool_type)}/base_job_template")

    # --- work queues ---------------------------------------------------------------------------

    def create_work_queue(self, pool: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/work_pools/{_seg(pool)}/queues", json=body)

    def list_work_queues(self, pool: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/work_pools/{_seg(pool)}/queues")

    def get_work_queue(self, pool: str, name: str) -> dict[str, Any]:
        return self.request("GET", f"/work_pools/{_seg(pool)}/queues/{_seg(name)}")

    def update_work_queue(self, pool: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/work_pools/{_seg(pool)}/queues/{_seg(name)}", json=body)

    def delete_work_queue(self, pool: str, name: str) -> None:
        self.request("DELETE", f"/work_pools/{_seg(pool)}/queues/{_seg(name)}")

    # --- workers -------------------------------------------------------------------------------

    def poll(self, pool: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self.request("POST", f"/work_pools/{_seg(pool)}/poll", json=body, timeout=timeout)

    def poll_deployments(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Claim runs of deployments that have no pool (those a `flow.serve()` process runs)."""
        return self.request("POST", "/flow_runs/poll", json=body, timeout=timeout)

    # --- deployments ---------------------------------------------------------------------------

    def upsert_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/deployments", json=body)

    def validate_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """What upsert_deployment would answer, without saving anything."""
        return self.request("POST", "/deployments", json=body, params={"dry_run": "true"})

    def list_deployments(self) -> list[dict[str, Any]]:
        return self.request("GET", "/deployments")

    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        return self.request("GET", f"/deployments/{_seg(deployment_id)}")

    def get_deployment_by_name(self, full_name: str) -> dict[str, Any]:
        flow_name, sep, name = full_name.partition("/")
        if not sep or not flow_name or not name:
            raise InvalidInput(
                f"'{full_name}' is not a deployment name: use 'flow-name/deployment-name' "
                "(`push-pools deployment ls` lists them)"
            )
        return self.request("GET", f"/deployments/name/{_seg(flow_name)}/{_seg(name)}")

    def update_deployment(self, deployment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/deployments/{_seg(deployment_id)}", json=body)

    def delete_deployment(
        self, deployment_id: str, *, force: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete a deployment; with runs in flight, only with `force` (Conflict otherwise)."""
        return self.request(
            "DELETE", f"/deployments/{_seg(deployment_id)}", params=_delete_params(force, dry_run)
        )

    def create_run(self, deployment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/deployments/{_seg(deployment_id)}/runs", json=body)

    # --- flow runs -----------------------------------------------------------------------------

    def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self.request("GET", "/flow_runs", params=params)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/flow_runs/{_seg(run_id)}")

    def run_states(self, run_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/flow_runs/{_seg(run_id)}/states")

    def execution_context(self, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/flow_runs/{_seg(run_id)}/execution")

    def set_state(
        self, run_id: str, proposal: dict[str, Any], *, key: str | None = None
    ) -> dict[str, Any]:
        """Propose a state. `key`: the id of this write (made here when not given), so that a
        retry is applied once; pass the same one to send the same proposal again."""
        return self.request(
            "POST",
            f"/flow_runs/{_seg(run_id)}/state",
            json=proposal,
            idempotency_key=key or new_write_key(),
        )

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        return self.request("POST", f"/flow_runs/{_seg(run_id)}/cancel")

    def delete_run(self, run_id: str) -> None:
        self.request("DELETE", f"/flow_runs/{_seg(run_id)}")

    def add_logs(
        self,
        run_id: str,
        logs: list[dict[str, Any]],
        *,
        key: str | None = None,
        dropped: int = 0,
    ) -> dict[str, int]:
        """Store log lines; answers {count, dropped}: the lines received, and how many lines
        the run's quota dropped because of them. `key` as for set_state. `dropped`: lines
        counted but not sent (the run is over its quota), added to the run's dropped lines."""
        return self.request(
            "POST",
            f"/flow_runs/{_seg(run_id)}/logs",
            json=logs,
            params={"dropped": dropped} if dropped else None,
            idempotency_key=key or new_write_key(),
        )

    def get_logs(
        self, run_id: str, after: int = 0, limit: int = 1000, max_bytes: int | None = None
    ) -> list[dict[str, Any]]:
        """One page of a run's logs after the id `after` (the server also ends a page by its
        size: page on from the last id until a page is empty)."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if max_bytes is not None:
            params["max_bytes"] = max_bytes
        return self.request("GET", f"/flow_runs/{_seg(run_id)}/logs", params=params)

    # --- blocks --------------------------------------------------------------------------------

    def create_block(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/blocks", json=body)

    def list_blocks(self) -> list[dict[str, Any]]:
        return self.request("GET", "/blocks")

    def get_block(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/blocks/{_seg(name)}")

    def delete_block(self, name: str) -> None:
        self.request("DELETE", f"/blocks/{_seg(name)}")

    def list_block_types(self) -> list[dict[str, Any]]:
        return self.request("GET", "/block_types")

    # --- infrastructure records (provisioners/plan.py) -------------------------------------------

    def list_infrastructure(self, pool: str) -> list[dict[str, Any]]:
        """The records of a pool name in save order; the pool itself need not exist."""
        return self.request("GET", f"/work_pools/{_seg(pool)}/infrastructure")

    def save_infrastructure(self, pool: str, record: dict[str, Any]) -> dict[str, Any]:
        """Upsert `record` ({step, kind, identifier, created, data}) by its step; no secrets."""
        body = {k: v for k, v in record.items() if k != "step"}
        step = record.get("step")
        if not isinstance(step, str) or not step:
            raise InvalidInput("an infrastructure record needs the id of its step ('step')")
        return self.request(
            "PUT", f"/work_pools/{_seg(pool)}/infrastructure/{_seg(step)}", json=body
        )

    def delete_infrastructure(self, pool: str, step: str) -> None:
        """Forget one step's record; NotFound when the pool name has none for that step."""
        self.request("DELETE", f"/work_pools/{_seg(pool)}/infrastructure/{_seg(step)}")

    # --- code bundles ---------------------------------------------------------------------------

    def has_bundle(self, sha256: str, work_pool_name: str | None = None) -> bool:
        """Whether the server has the bundle where `work_pool_name`'s runs will read it (its
        bucket, when it names one; else the store), so a deploy need not upload it."""
        try:
            self.send(
                "HEAD",
                f"/bundles/{_seg(sha256)}",
                params={"work_pool_name": work_pool_name} if work_pool_name else None,
            )
        except NotFound:
            return False
        return True

    def upload_bundle(
        self, sha256: str, data: bytes, work_pool_name: str | None = None
    ) -> dict[str, Any]:
        """Upload a bundle; with `work_pool_name`, into the bucket that pool names, if any."""
        return self.request(
            "PUT",
            f"/bundles/{_seg(sha256)}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            params={"work_pool_name": work_pool_name} if work_pool_name else None,
        )

    def download_bundle(self, sha256: str) -> bytes:
        return self.send("GET", f"/bundles/{_seg(sha256)}").content

    def download_wheel(self) -> tuple[str, bytes]:
        """(file name, bytes) of the server's own push-pools wheel."""
        response = self.send("GET", "/wheel")
        return response.headers.get("x-wheel-filename", "push_pools.whl"), response.content


def new_write_key() -> str:
    """A fresh id for one write (a log batch, a state proposal)."""
    import uuid

    return str(uuid.uuid4())


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return default
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_SECONDS)


def _error_from_response(response: httpx.Response, api_url: str) -> PushPoolsError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's request-validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', [])[1:]) or 'body'}: {err.get('msg')}"
            for err in detail
        )
    message = str(detail or response.text or response.reason_phrase)
    if response.status_code == 401:
        return AuthenticationError(
            f"the push-pools API at {api_url} refused the request: {message}. "
            "Set PUSH_POOLS_API_KEY to the server's API key."
        )
    if code == "already_exists":
        return AlreadyExists(message)
    error_class = _ERRORS_BY_STATUS.get(response.status_code, PushPoolsError)
    if error_class is PushPoolsError:
        message = f"the push-pools API at {api_url} answered {response.status_code}: {message}"
    return error_class(message)


def _delete_params(force: bool, dry_run: bool) -> dict[str, str]:
    params = {}
    if force:
        params["force"] = "true"
    if dry_run:
        params["dry_run"] = "true"
    return params
