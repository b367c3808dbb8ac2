"""A small HTTP/1.1 client on the standard library, for short-lived CLI commands.

Importing httpx and building its client (transports, an SSL context from certifi's bundle) costs
a CLI command ~0.1 s, more than the request itself. A command talking to a plain-http server
without a proxy needs none of that: `usable_for` says when this client may stand in, and
push_pools.client falls back to httpx otherwise (https, proxies, anything httpx reads from the
environment), so behaviour outside that case is httpx's.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import select
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


class Response:
    """The parts of an httpx.Response that push_pools.client reads."""

    def __init__(self, status_code: int, reason: str, headers: Any, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason
        self.headers = headers  # http.client's message: .get() ignores the name's case
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


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
        self._connection: http.client.HTTPConnection | None = None

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
        connection = self._open(wait)
        try:
            connection.request(method, target, body=body, headers=headers)
        except OSError as exc:
            # http.client sets `sock` only once connected: without one nothing was sent.
            connected = connection.sock is not None
            self.close()
            raise (ReadError if connected else ConnectError)(str(exc)) from exc
        try:
            answer = connection.getresponse()
            data = answer.read()
        except TimeoutError as exc:
            self.close()
            raise ReadTimeout(f"no answer within the timeout ({exc})") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ReadError(str(exc)) from exc
        if answer.will_close:
            self.close()
        return Response(answer.status, answer.reason, answer.headers, data)

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        connection = self._connection
        if connection is not None and _closed_by_peer(connection):
            self.close()
            connection = None
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._connection = connection
        elif connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection the server has since closed reads as ready (EOF): sending
    on it would fail, so a new one is opened instead, as httpx does."""
    sock = connection.sock
    if sock is None:
        return False
    readable, _, _ = select.select([sock], [], [], 0)
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
