"""A limit on request bodies: anything larger is answered 413 before it is read into memory."""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.exceptions import HTTPException

from push_pools.errors import InvalidInput

# Room for a log batch of the engine's (about 1 MB of text, escaped) many times over, and for
# the largest deployment anyone writes by hand.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
ENV_VAR = "PUSH_POOLS_MAX_REQUEST_BYTES"

Scope = dict[str, Any]
Message = dict[str, Any]


def max_body_bytes() -> int:
    """`PUSH_POOLS_MAX_REQUEST_BYTES` (default 10 MiB); read when the app is built, so a bad
    value stops `server start` with one line."""
    raw = os.environ.get(ENV_VAR) or str(DEFAULT_MAX_BODY_BYTES)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1024 <= value <= 2**31:
        raise InvalidInput(
            f"{ENV_VAR}={raw!r} is not a number of bytes between 1024 and 2147483648; "
            f"unset it for the default of {DEFAULT_MAX_BODY_BYTES}"
        )
    return value


class _TooLarge(HTTPException):
    """Raised from `receive`: an HTTPException because FastAPI turns any other error raised
    while reading a body into a 400; whatever the app answers is replaced by our 413."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodySizeLimit:
    """ASGI middleware: a declared Content-Length over the limit is refused at once; a body
    sent without one (chunked) is counted as it arrives and refused when it passes the limit."""

    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes if max_bytes is not None else max_body_bytes()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return

        received = 0
        too_large = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def replacing_send(message: Message) -> None:
            nonlocal answered
            if not too_large:
                await send(message)
            elif not answered:
                answered = True
                await self._refuse(send, None)

        try:
            await self.app(scope, counting_receive, replacing_send)
        except _TooLarge:
            if not answered:
                answered = True
                await self._refuse(send, None)

    async def _refuse(self, send: Any, declared: int | None) -> None:
        size = f"{declared:,} bytes" if declared is not None else "more than the limit"
        body = json.dumps(
            {
                "detail": f"the request body is {size}; the server accepts at most "
                f"{self.max_bytes:,} bytes per request ({ENV_VAR} on the server)",
                "code": "payload_too_large",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The client may still be sending: do not read the rest of it.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
