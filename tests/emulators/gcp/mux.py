"""One TCP port for gRPC and HTTP/1.1: peek at each connection's first bytes and hand it on.

gRPC clients open with the HTTP/2 preface (`PRI * HTTP/2.0`): those connections are relayed
byte for byte to the internal grpcio server (grpcio cannot adopt an accepted socket). Any other
connection is served in place by the REST server, on this thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

__all__ = ["PortMux"]

_PREFACE = b"PRI"
_PEEK_TIMEOUT = 30.0


class PortMux:
    def __init__(
        self,
        serve_http: Callable[[socket.socket, tuple[str, int]], None],
        grpc_port: Callable[[], int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.serve_http = serve_http
        self.grpc_port = grpc_port
        self._listener = socket.create_server((host, port), backlog=128)
        self.host, self.port = self._listener.getsockname()[:2]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="gcp-mux", daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, address = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._route, args=(conn, address), name="gcp-conn", daemon=True
            ).start()

    def _route(self, conn: socket.socket, address: tuple[str, int]) -> None:
        self._track(conn)
        try:
            conn.settimeout(_PEEK_TIMEOUT)
            try:
                head = conn.recv(len(_PREFACE), socket.MSG_PEEK | socket.MSG_WAITALL)
            except OSError:
                return
            conn.settimeout(None)
            if not head:
                return
            if head == _PREFACE:
                self._relay(conn)
            else:
                self.serve_http(conn, address)
        finally:
            self._untrack(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.grpc_port()))
        except OSError:
            return
        self._track(upstream)
        back = threading.Thread(
            target=_pump, args=(upstream, client), name="gcp-grpc-relay", daemon=True
        )
        back.start()
        _pump(client, upstream)
        back.join()
        self._untrack(upstream)
        with contextlib.suppress(OSError):
            upstream.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until `source` ends, then end `sink`'s writing side (half-close)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
