"""The CLI's standard-library HTTP client (push_pools/http_stdlib.py) against real servers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from push_pools.client import Client
from push_pools.errors import ServerUnreachable


class _ClosesIdleConnections(BaseHTTPRequestHandler):
    """Answers keep-alive style, then drops the connection, as a server's idle timeout does."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = f'{{"path": "{self.path}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """The API URL of a real HTTP server on 127.0.0.1 answering with `handler`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closing_server() -> Iterator[str]:
    yield from _serve(_ClosesIdleConnections)


def test_a_connection_the_server_closed_is_replaced(closing_server: str) -> None:
    with Client(closing_server, stdlib_http=True) as client:
        first = client.request("GET", "/work_pools", params={"force": True, "tag": ["a", "b"]})
        second = client.request("GET", "/flow_runs")
    assert first == {"path": "/api/work_pools?force=true&tag=a&tag=b"}
    assert second == {"path": "/api/flow_runs"}


def test_an_unreachable_server_is_named(unused_port_url: str) -> None:
    with (
        Client(unused_port_url, stdlib_http=True) as client,
        pytest.raises(ServerUnreachable) as err,
    ):
        client.list_work_pools()
    assert unused_port_url in err.value.message
    assert "(ConnectError)" in err.value.message


@pytest.fixture
def unused_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


def test_https_and_proxies_are_left_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    from push_pools.http_stdlib import usable_for

    assert usable_for("http://127.0.0.1:4200/api")
    assert not usable_for("https://pools.example.com/api")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert not usable_for("http://127.0.0.1:4200/api")


class _Chunked(BaseHTTPRequestHandler):
    """A chunked answer (a streaming response), then one cut short."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.endswith("/short"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"cut": ')
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Bundle-Size", "3")
        self.end_headers()
        for part in (b'{"parts": ', b'["a", ', b'"b"]}'):
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chunked_server() -> Iterator[str]:
    yield from _serve(_Chunked)


def test_chunked_answers_are_joined_and_a_cut_answer_is_an_error(chunked_server: str) -> None:
    from push_pools.http_stdlib import ReadError, StdlibHttp

    http = StdlibHttp(chunked_server, {}, timeout=10)
    try:
        first = http.request("GET", "/stream")
        assert first.json() == {"parts": ["a", "b"]}
        assert first.headers.get("x-bundle-size") == "3"  # any case
        # The same connection, kept alive after a chunked answer.
        assert http.request("GET", "/again").json() == {"parts": ["a", "b"]}
        with pytest.raises(ReadError, match="ended after 8 of 100 bytes"):
            http.request("GET", "/short")
    finally:
        http.close()
