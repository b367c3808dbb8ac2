"""The HTTP(S) listeners: turn each request into a `Request`, send back the `Response`.

HTTP/1.1 with keep-alive (the SDKs pool connections). The TLS handshake happens in the
connection's own thread, so a client that never finishes one cannot block the others.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.emulators.azure.wire import Request, Response

__all__ = ["Listener"]

Dispatch = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    dispatch: Dispatch
    base_url: str
    tls: bool

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-request (or mid-handshake) are not the emulator's failure.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        if self.server.tls and isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=self.server.base_url,
        )
        response = self.server.dispatch(request)
        payload = response.payload()
        self.send_response(response.status)
        headers = dict(response.headers)
        if payload and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json; charset=utf-8"
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Listener:
    """One server on 127.0.0.1 in a background thread; TLS when given a certificate."""

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        port: int = 0,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.dispatch = dispatch
        self._server.tls = cert is not None
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = self._server.server_address[1]
        scheme = "https" if cert is not None else "http"
        self.base_url = self._server.base_url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"azure-emulator-{self.port}",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
