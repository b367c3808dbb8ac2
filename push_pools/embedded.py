"""An API server running in a thread of this process, for the demo and the tests."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

from push_pools.errors import PushPoolsError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """`with EmbeddedServer() as server:` serves the API on 127.0.0.1 until the block ends."""

    def __init__(
        self,
        port: int | None = None,
        *,
        api_key: str | None = None,
        database_url: str | None = None,
        run_dispatcher: bool = True,
    ) -> None:
        import uvicorn

        from push_pools.api.app import create_app
        from push_pools.store.db import Store

        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.store = Store(database_url)
        self.app = create_app(
            self.store, api_key=api_key, api_url=self.api_url, run_dispatcher=run_dispatcher
        )
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="api-server")

    def start(self, timeout: float = 20.0) -> EmbeddedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise PushPoolsError(f"the embedded API server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.store.dispose()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
