"""A small HTTP/1.1 client on a plain socket, for short-lived CLI commands.

Importing httpx and building its client (transports, an SSL context from certifi's bundle) costs
a CLI command ~0.1 s, more than the request itself; even http.client imports ssl and the email
package (~0.02 s). A command talking to a plain-http server without a proxy needs none of that:
`usable_for` says when this client may stand in, and push_pools.client falls back to httpx
otherwise (https, proxies, anything httpx reads from the environment), so behaviour outside
that case is httpx's. It speaks the part of HTTP/1.1 our server uses: one request at a time on a
kept-alive connection, bodies by Content-Length or chunked.
"""

from __future__ import annotations

import json as jsonlib
import os
import select
import socket
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = [
    "ConnectError",
    "ReadError",
    "ReadTimeout",
    "StdlibHttp",
    "TransportError",
    "usable_for",
]

# Environment variables httpx honours (trust_env): with any of them set, httpx decides.
_HTTPX_ENVIRONMENT = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_REPEATABLE = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


# Named as httpx names the same failures, since the name shows in "cannot reach" messages.
class TransportError(Exception):
    """The exchange failed."""


class ConnectError(TransportError):
    """No connection: the request was never sent."""


class ReadError(TransportError):
    """The connection broke after the request may have been sent."""


class ReadTimeout(TransportError):
    """No answer within the timeout."""


def usable_for(api_url: str) -> bool:
    """True when `api_url` is plain http and no proxy setting applies."""
    if urlsplit(api_url).scheme != "http":
        return False
    names = {name.lower() for name in os.environ}
    return not any(name in names for name in _HTTPX_ENVIRONMENT)


class Headers:
    """A response's headers; .get() ignores the name's case, as httpx's does."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            self._values[key] = f"{self._values[key]}, {value}" if key in self._values else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)


class Response:
    """The parts of an httpx.Response that push_pools.client reads."""

    def __init__(self, status_code: int, reason: str, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class _Connection:
    """One connected socket and a buffered reader of it."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class StdlibHttp:
    """One keep-alive connection to the API's host; requests are sent one at a time."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc
        self._headers = headers
        self._timeout = timeout
        self._connection: _Connection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        target = self._prefix + path
        query = _encode_params(params)
        if query:
            target += "?" + query
        sent_headers = {"Host": self._host_header, "Accept": "*/*", **self._headers}
        body = content
        if json is not None:
            # Same encoding as httpx's: compact, UTF-8, no NaN.
            body = jsonlib.dumps(
                json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            sent_headers["Content-Type"] = "application/json"
        if body is not None or method.upper() in ("POST", "PUT", "PATCH"):
            sent_headers["Content-Length"] = str(len(body or b""))
        sent_headers.update(headers or {})
        wait = self._timeout if timeout is None else timeout
        reused = self._connection is not None
        try:
            return self._exchange(method, target, body, sent_headers, wait)
        except ReadError:
            # The server may close an idle connection just as a request goes out on it; a
            # request that is harmless to repeat then goes once more, on a new connection.
            if not reused or method.upper() not in _REPEATABLE:
                raise
            return self._exchange(method, target, body, sent_headers, wait)

    def _exchange(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str], wait: float
    ) -> Response:
        try:
            connection = self._open(wait)
        except OSError as exc:
            self.close()
            raise ConnectError(str(exc)) from exc
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        try:
            connection.sock.sendall(head.encode("latin-1") + b"\r\n" + (body or b""))
        except OSError as exc:
            self.close()
            raise ReadError(str(exc)) from exc
        try:
            response, will_close = _read_response(connection.reader, method)
        except TimeoutError as exc:
            self.close()
            raise ReadTimeout(f"no answer within the timeout ({exc})") from exc
        except (OSError, ValueError) as exc:
            self.close()
            raise ReadError(str(exc) or type(exc).__name__) from exc
        if will_close:
            self.close()
        return response

    def _open(self, timeout: float) -> _Connection:
        connection = self._connection
        if connection is not None and _closed_by_peer(connection):
            self.close()
            connection = None
        if connection is None:
            connection = _Connection(self._host, self._port, timeout)
            self._connection = connection
        else:
            connection.sock.settimeout(timeout)
        return connection


_MAX_LINE = 65536


def _line(reader: Any) -> bytes:
    line = bytes(reader.readline(_MAX_LINE + 1))
    if len(line) > _MAX_LINE:
        raise ValueError("a response line is too long")
    return line


def _read_response(reader: Any, method: str) -> tuple[Response, bool]:
    """The response on `reader`, and whether the server will close the connection after it.
    ValueError for what is not an HTTP/1.x response."""
    status_line = _line(reader)
    if not status_line:
        raise ValueError("the server closed the connection without answering")
    version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
    code_text, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code_text.isdigit():
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    pairs: list[tuple[str, str]] = []
    while True:
        line = _line(reader)
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            pairs.append((name.strip(), value.strip()))
    headers = Headers(pairs)
    status = int(code_text)
    connection = (headers.get("connection") or "").lower()
    will_close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    if method.upper() == "HEAD" or status in (204, 304) or 100 <= status < 200:
        content = b""
    elif "chunked" in (headers.get("transfer-encoding") or "").lower():
        content = _read_chunked(reader)
    elif headers.get("content-length") is not None:
        length = int(headers.get("content-length") or "0")
        content = bytes(reader.read(length))
        if len(content) != length:
            raise ValueError(f"the response ended after {len(content)} of {length} bytes")
    else:
        content, will_close = bytes(reader.read()), True  # until the server closes
    return Response(status, reason, headers, content), will_close


def _read_chunked(reader: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        size = int(size_text, 16)  # ValueError for a malformed size
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        chunk = bytes(reader.read(size))
        if len(chunk) != size:
            raise ValueError("the response ended inside a chunk")
        parts.append(chunk)
        _line(reader)  # the CRLF after the chunk


def _closed_by_peer(connection: _Connection) -> bool:
    """An idle kept-alive connection the server has since closed reads as ready (EOF): sending
    on it would fail, so a new one is opened instead, as httpx does."""
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable)


def _encode_params(params: dict[str, Any] | None) -> str:
    """Query parameters as httpx writes them: booleans lower-case, lists repeated."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is True or item is False:
                text = "true" if item else "false"
            elif item is None:
                text = ""
            else:
                text = str(item)
            pairs.append((key, text))
    return urlencode(pairs)
