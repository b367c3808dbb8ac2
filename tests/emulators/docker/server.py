"""HTTP/1.1 on 127.0.0.1 for the Engine API: routing, errors, chunked streams, recording.

Every request is recorded (method, path without the version prefix, query, headers) before it
is handled. Errors are `{"message": ...}` with the engine's status; a 304 has no body. A route
that matches nothing answers 404 "page not found", as the engine does.
"""

from __future__ import annotations

import re
import select
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.emulators.docker.backend import DockerBackend, RecordedRequest
from tests.emulators.docker.exceptions import DockerApiError, InvalidParameter, NotModified
from tests.emulators.docker.responses import (
    API_VERSION,
    ENGINE_VERSION,
    MIN_API_VERSION,
    DockerResponses,
)
from tests.emulators.docker.urls import resolve
from tests.emulators.docker.wire import ApiRequest, ApiResponse, json_response

__all__ = ["EngineServer"]

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")
_NOT_RECORDED = {
    "host",
    "connection",
    "keep-alive",
    "accept",
    "accept-encoding",
    "content-length",
    "transfer-encoding",
}


class EngineServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: DockerBackend, engine_id: str) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.responses = DockerResponses(backend, engine_id)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (or our own close_connections) is not an emulator bug.
        if not isinstance(sys.exc_info()[1], OSError):
            self.backend.errors.append(traceback.format_exc())

    def close_connections(self) -> None:
        """End kept-alive connections, so their threads do not outlive the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_api(self, request: ApiRequest) -> ApiResponse:
        self.backend.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                api_version=request.api_version,
                query=request.query,
                headers={
                    k: v for k, v in request.headers.items() if k.lower() not in _NOT_RECORDED
                },
                body_size=len(request.body),
            )
        )
        try:
            _check_version(request.api_version)
            route = resolve(request.method, request.path)
            if route is None:
                return json_response({"message": "page not found"}, status=404)
            name, request.match = route
            handler: Callable[[ApiRequest], ApiResponse] = getattr(self.responses, name)
            return handler(request)
        except NotModified:
            return ApiResponse(status=304, content_type="text/plain")
        except DockerApiError as exc:
            return json_response({"message": exc.message}, status=exc.status)
        except Exception as exc:  # an emulator bug: answer as the engine would, keep a trace
            self.backend.errors.append(traceback.format_exc())
            return json_response({"message": f"emulator error: {exc!r}"}, status=500)


def _check_version(version: str | None) -> None:
    if version is None:
        return
    wanted = tuple(int(part) for part in version.split("."))
    if wanted > tuple(int(part) for part in API_VERSION.split(".")):
        raise InvalidParameter(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )
    if wanted < tuple(int(part) for part in MIN_API_VERSION.split(".")):
        raise InvalidParameter(
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version"
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EngineServer

    def version_string(self) -> str:
        return f"Docker/{ENGINE_VERSION} (linux)"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are in engine.requests

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        path = unquote(url.path)
        version = None
        match = _VERSIONED.match(path)
        if match:
            version, path = match[1], match[2]
        request = ApiRequest(
            method=self.command,
            path=path,
            api_version=version,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=dict(self.headers.items()),
            body=body,
            client_gone=self._client_gone,
        )
        self._write(self.server.handle_api(request))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            pieces: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _write(self, response: ApiResponse) -> None:
        self.send_response(response.status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        if response.status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Type", response.content_type)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = iter(response.stream)
        try:
            for piece in pieces:
                if piece:
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away mid-stream (a follow it stopped reading)
            self.close_connection = True
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
