"""The HTTP/1.1 side: routes, bearer-token checks, faults and the call log for every REST API.

Each API package lists its routes (`urls.py`); a route's handler takes a `Request` and returns
a `Response` or a JSON-able dict, or raises `ApiError`. Every call but the token endpoint needs
a valid bearer token (401 UNAUTHENTICATED otherwise). Handlers run under the emulator's lock
unless the route says not to (a `:wait` that blocks).
"""

from __future__ import annotations

import json
import re
import threading
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.emulators.gcp.auth import TokenAuthority
from tests.emulators.gcp.calls import Call, CallLog
from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.faults import Faults

__all__ = ["Request", "Response", "RestServer", "Route", "route"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    principal: str = ""

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise ApiError("INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(value, dict):
            raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.")
        return value


@dataclass
class Response:
    body: dict[str, Any] | bytes | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"


Handler = Callable[[Request], "Response | dict[str, Any]"]


@dataclass(frozen=True)
class Route:
    verb: str
    pattern: re.Pattern[str]
    handler: Handler
    mutating: bool
    public: bool = False
    locked: bool = True


def route(
    verb: str,
    regex: str,
    handler: Handler,
    *,
    mutating: bool | None = None,
    public: bool = False,
    locked: bool = True,
) -> Route:
    """A route on the raw (still percent-encoded) path; named groups arrive decoded."""
    return Route(
        verb,
        re.compile(regex),
        handler,
        verb != "GET" if mutating is None else mutating,
        public,
        locked,
    )


class RestServer(ThreadingHTTPServer):
    """Serves connections handed to it by the port multiplexer (it never binds a socket)."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        authority: TokenAuthority,
        faults: Faults,
        calls: CallLog,
        lock: threading.RLock,
        errors: list[str],
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self.routes = list(routes)
        self.authority = authority
        self.faults = faults
        self.calls = calls
        self.lock = lock
        self.errors = errors

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-request is not the emulator's failure.
        pass

    def find(self, verb: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for candidate in self.routes:
            if candidate.verb != verb:
                continue
            found = candidate.pattern.fullmatch(path)
            if found:
                params = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items() if v}
                return candidate, params
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux), which made every call take ~50 ms.
    disable_nagle_algorithm = True
    server: RestServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, verb: str) -> None:
        path, _, query_string = self.path.partition("?")
        body = self._read_body()
        request = Request(verb, path, urllib.parse.parse_qs(query_string), self.headers, body)
        found = self.server.find(verb, path)
        mutating = found[0].mutating if found else verb != "GET"
        protocol = "oauth" if found and found[0].public else "rest"
        principal: str | None = None
        try:
            if found is None:
                raise ApiError("NOT_FOUND", f"The requested URL {path} was not found.")
            matched, request.params = found
            if not matched.public:
                principal = self.server.authority.authenticate(self.headers.get("Authorization"))
                request.principal = principal
            response = self._call(matched, request, f"{verb} {path}")
        except ApiError as error:
            response = Response(error.body(), error.http_status)
        except Exception:  # a bug in the emulator: tell the test, answer 500
            self.server.errors.append(traceback.format_exc())
            response = Response(ApiError("INTERNAL", "Internal error.").body(), 500)
        code = _code_of(response)
        self.server.calls.append(
            Call(protocol, verb, path, principal, response.status, code, mutating, query_string)
        )
        self._write(response)

    def _call(self, matched: Route, request: Request, signature: str) -> Response:
        fault = self.server.faults.pick(signature)
        if fault is not None and not fault.after_effect:
            raise fault.error()
        if matched.locked:
            with self.server.lock:
                result = matched.handler(request)
        else:
            result = matched.handler(request)
        if fault is not None:
            raise fault.error()
        return result if isinstance(result, Response) else Response(result)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _write(self, response: Response) -> None:
        if isinstance(response.body, dict):
            payload = json.dumps(response.body).encode()
        else:
            payload = response.body or b""
        self.send_response(response.status)
        headers = {"Content-Type": response.content_type, **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def _code_of(response: Response) -> str:
    if response.status < 400:
        return "OK"
    if isinstance(response.body, dict):
        error = response.body.get("error")
        if isinstance(error, dict) and isinstance(error.get("status"), str):
            return str(error["status"])
        if isinstance(error, str):  # the token endpoint's RFC 6749 errors
            return "UNAUTHENTICATED"
    return "UNKNOWN"
